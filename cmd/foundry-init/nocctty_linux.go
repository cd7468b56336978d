package main

import "golang.org/x/sys/unix"

// unixNoCTTY keeps the consoles the init opens from becoming its
// controlling terminal (a hang-up there would signal it).
const unixNoCTTY = unix.O_NOCTTY
