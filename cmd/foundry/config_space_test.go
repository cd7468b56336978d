package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// store.space_reserve: a size, 0 or off (no reserve), unset the store's
// default; anything else, or less than minSpaceReserve, is refused by
// name — by check-config and by serve, which read the file alike.
func TestConfigSpaceReserve(t *testing.T) {
	tests := []struct {
		yaml string
		want int64
		bad  bool
	}{
		{"", 0, false},
		{"store: {}\n", 0, false},
		{"store: {space_reserve: 128MiB}\n", 128 << 20, false},
		{"store: {space_reserve: 1 GiB}\n", 1 << 30, false},
		{"store: {space_reserve: 536870912}\n", 512 << 20, false},
		{"store: {space_reserve: 32MiB}\n", 32 << 20, false},
		{"store: {space_reserve: 0}\n", -1, false},
		{"store: {space_reserve: off}\n", -1, false},
		{"store: {space_reserve: 'off'}\n", -1, false},
		{"store: {space_reserve: 16MiB}\n", 0, true},
		{"store: {space_reserve: 0MiB}\n", 0, true},
		{"store: {space_reserve: -1}\n", 0, true},
		{"store: {space_reserve: lots}\n", 0, true},
		{"store: {space_reserve: 128MB}\n", 0, true},
		{"store: {space_reserve: no}\n", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.yaml, func(t *testing.T) {
			c, err := parseConfig([]byte("http: {advertise: 'http://10.99.0.1:8080'}\n"+tt.yaml), fakeHost)
			if tt.bad {
				if err == nil || !strings.Contains(err.Error(), "\n  store.space_reserve: ") {
					t.Errorf("accepted, or refused without naming the key: %v", err)
				}
				return
			}
			if err != nil || c.SpaceReserve != tt.want {
				t.Errorf("space reserve %d, %v; want %d", c.SpaceReserve, err, tt.want)
			}
		})
	}
}

// The check-config and serve commands refuse a bad reserve alike, before
// serve opens anything; serve gives a good one to the store, which keeps
// that much space back (its ballast file in the database directory).
func TestServeSpaceReserve(t *testing.T) {
	dir := t.TempDir()
	write := func(reserve string) string {
		p := filepath.Join(dir, "foundry.yaml")
		cfg := "data_dir: " + filepath.Join(dir, "data-"+reserve) + "\n" +
			"http: {listen: '127.0.0.1:0', advertise: 'http://127.0.0.1:8080'}\n" +
			"tftp: {listen: '127.0.0.1:0'}\n" +
			"store: {space_reserve: " + reserve + "}\n"
		if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bad := write("8MiB")
	for _, cmd := range []func() error{
		func() error {
			c := newCheckConfigCmd()
			c.SetArgs([]string{"--config", bad})
			c.SetOut(io.Discard)
			c.SetErr(io.Discard)
			return c.Execute()
		},
		func() error {
			c := newServeCmd()
			c.SetArgs([]string{"--config", bad})
			c.SetOut(io.Discard)
			c.SetErr(io.Discard)
			return c.Execute()
		},
	} {
		if err := cmd(); err == nil || !strings.Contains(err.Error(), `store.space_reserve: "8MiB" is less than 32MiB`) {
			t.Errorf("a reserve under the floor: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "data-8MiB")); !os.IsNotExist(err) {
		t.Errorf("serve touched data_dir before refusing its configuration: %v", err)
	}

	for _, c := range []struct {
		reserve string
		size    int64 // 0: no ballast
	}{{"40MiB", 40 << 20}, {"off", 0}} {
		cfg, err := loadConfig(write(c.reserve), fakeHost)
		if err != nil {
			t.Fatal(err)
		}
		// The ballast is the store's (store/space.go, ballastName).
		db := filepath.Join(cfg.DataDir, "db")
		ballast := filepath.Join(db, "foundry-space-reserve")
		if err := os.MkdirAll(filepath.Join(cfg.ImageDir, "ipxe"), 0o755); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- serve(ctx, cfg, io.Discard, io.Discard) }()
		deadline := time.Now().Add(20 * time.Second)
		for {
			fi, err := os.Stat(ballast)
			if c.size > 0 && err == nil && fi.Size() == c.size {
				break
			}
			if c.size == 0 && os.IsNotExist(err) && fileExists(filepath.Join(db, "MANIFEST")) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("space_reserve %s: ballast %v, %v", c.reserve, fi, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve with space_reserve %s: %v", c.reserve, err)
		}
	}
}
