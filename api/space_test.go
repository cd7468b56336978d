package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/store"
)

// A full data disk: writes answer 507 with the store's message, reads 200.
func TestFullDiskAnswers507(t *testing.T) {
	var free atomic.Int64
	free.Store(1 << 40)
	db, err := store.Open(t.TempDir(), store.Options{SpaceReserve: 1 << 20,
		FreeSpace: func(string) (int64, error) { return free.Load(), nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	secret, hash, err := api.NewAPIToken()
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateAPIToken(store.APIToken{ID: "admin", Name: "admin", Role: store.RoleAdmin, Hash: hash}); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer((&api.Server{Store: db}).Handler())
	defer ts.Close()
	call := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+secret)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := call("POST", "/api/v1/clusters", `{"name":"c1"}`); code != 201 {
		t.Fatalf("create cluster with space: %d %s", code, body)
	}

	free.Store(512 << 10)
	code, body := call("POST", "/api/v1/clusters", `{"name":"c2"}`)
	var problem struct {
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}
	json.Unmarshal([]byte(body), &problem)
	if code != http.StatusInsufficientStorage || problem.Status != 507 ||
		!strings.Contains(problem.Detail, "data disk full") || !strings.Contains(problem.Detail, "writes resume once") {
		t.Errorf("create cluster on a full disk: %d %s; want 507 saying the data disk is full", code, body)
	}
	if code, body := call("GET", "/api/v1/clusters", ""); code != 200 || !strings.Contains(body, `"c1"`) {
		t.Errorf("list clusters on a full disk: %d %s", code, body)
	}
}
