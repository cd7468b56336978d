package api

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/store"
)

// TestAdmitSession: a new session's token must be its own, and a full set
// of sessions admits a new one only when the unbound one the store would
// end has been quiet for activeWithin.
func TestAdmitSession(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tok := func(n byte) store.RegToken {
		return store.RegToken{Salt: []byte{n, n, n, n, n, n, n, n}, Hash: []byte(fmt.Sprintf("hash-%d", n))}
	}
	// sessions returns n live sessions s0..s(n-1), each with its own
	// token, last heard quiet ago (s0 the quietest by a minute).
	sessions := func(n int, quiet time.Duration) []store.Session {
		var out []store.Session
		for i := range n {
			out = append(out, store.Session{ID: fmt.Sprintf("s%d", i), Token: tok(byte(10 + i)),
				LastSeen: now.Add(-quiet + time.Duration(i)*time.Minute)})
		}
		return out
	}
	newSess := store.Session{ID: "new", Token: tok(1)}
	copySalt := store.Session{ID: "new", Token: store.RegToken{Salt: tok(10).Salt, Hash: tok(1).Hash}}
	copyHash := store.Session{ID: "new", Token: store.RegToken{Salt: tok(1).Salt, Hash: tok(10).Hash}}
	full := store.MaxSessions
	for _, tc := range []struct {
		name  string
		live  []store.Session
		bound string
		sess  store.Session
		want  error
	}{
		{"first registration", nil, "", newSess, nil},
		{"a second, own token", sessions(1, 0), "", newSess, nil},
		{"copied salt", sessions(1, 0), "", copySalt, errTokenCopied},
		{"copied hash", sessions(1, 0), "", copyHash, errTokenCopied},
		{"copied, though the limit would end the original", sessions(full, time.Hour), "", copySalt, errTokenCopied},
		{"below the limit, all active", sessions(full-1, 0), "", newSess, nil},
		{"full, all active", sessions(full, 10*time.Second), "", newSess, errSessionsActive},
		{"full, the quietest just active", sessions(full, activeWithin-time.Second), "", newSess, errSessionsActive},
		{"full, the quietest quiet", sessions(full, activeWithin), "", newSess, nil},
		{"full, the quiet one is bound", sessions(full, activeWithin+time.Second), "s0", newSess, errSessionsActive},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := admitSession(tc.live, tc.bound, tc.sess, now); !errors.Is(got, tc.want) || (got == nil) != (tc.want == nil) {
				t.Fatalf("admitSession: %v, want %v", got, tc.want)
			}
		})
	}
}
