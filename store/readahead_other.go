//go:build !linux

package store

import "errors"

// canAdvise: mappings are advised only on Linux (readahead.go).
const canAdvise = false

var errNoAdvice = errors.New("mappings are advised only on linux")

func adviseRandom(uintptr, uintptr) error { return errNoAdvice }

func readSelfMaps() ([]byte, error) { return nil, errNoAdvice }
