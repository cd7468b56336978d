package api

import (
	"errors"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/foundry-appliance/foundry/store"
)

// noSpace answers a write the store refused because the appliance's data
// disk is full: 507 Insufficient Storage, with the store's message (how
// much is free, from when writes resume). Reads go on being answered. nil
// when err is not that refusal.
func noSpace(err error) error {
	if !errors.Is(err, store.ErrNoSpace) {
		return nil
	}
	return huma.NewError(http.StatusInsufficientStorage, err.Error())
}
