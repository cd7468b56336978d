package agent

import (
	"errors"
	"strings"
	"testing"
)

func TestParseCmdline(t *testing.T) {
	const good = "BOOT_IMAGE=vmlinuz initrd=initrd foundry.url=http://10.77.0.1:8080/ foundry.mac=52-54-00-12-34-AB foundry.nonce=n0nce_x console=tty0 console=ttyS0,115200"
	c, err := ParseCmdline(good)
	if err != nil {
		t.Fatal(err)
	}
	if c != (Cmdline{URL: "http://10.77.0.1:8080", MAC: "52:54:00:12:34:ab", Nonce: "n0nce_x"}) {
		t.Fatalf("got %+v", c)
	}
	tests := []struct {
		name, line, want string
	}{
		{"no url", "foundry.mac=52:54:00:12:34:56 foundry.nonce=x", "foundry.url missing"},
		{"ftp url", "foundry.url=ftp://x foundry.mac=52:54:00:12:34:56 foundry.nonce=x", "not an http(s) base URL"},
		{"url with query", "foundry.url=http://x/?a=b foundry.mac=52:54:00:12:34:56 foundry.nonce=x", "not an http(s) base URL"},
		{"url with user", "foundry.url=http://u:p@x foundry.mac=52:54:00:12:34:56 foundry.nonce=x", "not an http(s) base URL"},
		{"no mac", "foundry.url=http://x foundry.nonce=x", "foundry.mac missing"},
		{"bad mac", "foundry.url=http://x foundry.mac=52:54:00 foundry.nonce=x", "not a MAC"},
		{"long mac", "foundry.url=http://x foundry.mac=00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01 foundry.nonce=x", "not a MAC"},
		{"no nonce", "foundry.url=http://x foundry.mac=52:54:00:12:34:56", "foundry.nonce missing"},
		{"nonce with DEL", "foundry.url=http://x foundry.mac=52:54:00:12:34:56 foundry.nonce=a\x7fb", "HTTP header"},
		{"empty", "", "foundry.url missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseCmdline(tt.line)
			if err == nil || !errors.Is(err, ErrCmdline) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
