package main

import (
	"slices"
	"testing"
)

func TestModprobeNames(t *testing.T) {
	tests := []struct {
		args, want []string
	}{
		// What the kernel's request_module runs.
		{[]string{"-q", "--", "mdio:00000000000000011100110000010110"}, []string{"mdio:00000000000000011100110000010110"}},
		{[]string{"-q", "--", "-odd-name"}, []string{"-odd-name"}},
		{[]string{"mlx4_en", "-b", "crypto-crc32c"}, []string{"mlx4_en", "crypto-crc32c"}},
		{[]string{"-q"}, nil},
		{nil, nil},
	}
	for _, tt := range tests {
		if got := modprobeNames(tt.args); !slices.Equal(got, tt.want) {
			t.Errorf("modprobeNames(%q) = %q, want %q", tt.args, got, tt.want)
		}
	}
}
