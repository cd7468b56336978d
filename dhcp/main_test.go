package dhcp

import (
	"testing"

	"github.com/foundry-appliance/foundry/test/nstest"
)

// The Serve tests bind port 67 and send broadcasts: every test of this
// package runs inside a private network namespace.
func TestMain(m *testing.M) { nstest.Main(m) }
