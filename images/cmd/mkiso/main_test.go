package main

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunErrorsSayWhat checks that a failure names what is missing or the
// step and file it was working on (package iso tests the build itself).
func TestRunErrorsSayWhat(t *testing.T) {
	dir := t.TempDir()
	deb := filepath.Join(dir, "none.deb")
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"unknown flag", []string{"-nope"}, []string{"parse flags"}},
		{"no foundry", []string{"-kernel-deb", deb}, []string{"-kernel-deb and -foundry are required"}},
		{"bad version", []string{"-kernel-deb", deb, "-foundry", "f", "-version", "1 2"},
			[]string{"build ISO images/foundry-1 2.iso", `version "1 2"`}},
		{"missing kernel package", []string{"-kernel-deb", deb, "-foundry", "f", "-out", filepath.Join(dir, "x.iso")},
			[]string{"build ISO " + filepath.Join(dir, "x.iso"), "kernel package " + deb}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(context.Background(), tt.args, io.Discard)
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want it to contain %q", err, w)
				}
			}
		})
	}
}
