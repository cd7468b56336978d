package names

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the dashboard's verdict files (ui/src/lib/*names.json) from the rules")

// nameSample is one name and whether the rule accepts it.
type nameSample struct {
	Name string `json:"name"`
	OK   bool   `json:"ok"`
}

// TestDashboardHostnames writes the verdicts of the one host-name rule on
// tricky names into ui/src/lib/hostnames.json, which the dashboard's tests
// hold its instant check (wizard.ts hostnameError) to: the dashboard may
// say it sooner, but it cannot say something else.
func TestDashboardHostnames(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	max := strings.Repeat(long63+".", 3) + strings.Repeat("b", 61) // 253
	samples := []string{
		"node-01", "Node-01.Lab", "web01.lab.example", "1", "0-0", "discovered-123456",
		long63, long63 + "a", max, max + "b", "a..b", ".a", "a.", "-node", "node-", "a.-b", "a-.b",
		"node_1", "node 1", " node ", "x\nchain", "a;b", "a/b", "a*b",
		"ünï", strings.Repeat("ü", 127), // 254 bytes: too long for the API, 127 characters for JavaScript
		"\u212aube-01",  // KELVIN SIGN, which JavaScript's toLowerCase makes an ASCII k
		"\u0130nstance", // LATIN CAPITAL I WITH DOT ABOVE
		"ﬁle",           // a ligature that upper-cases to two letters
		"node\u200b",    // zero-width space
	}
	out := make([]nameSample, len(samples))
	for i, n := range samples {
		// Trimmed, then Hostname, as api's checkHostname does.
		_, err := Hostname(strings.TrimSpace(n))
		out[i] = nameSample{Name: n, OK: err == nil}
	}
	checkVerdicts(t, "hostnames.json", "TestDashboardHostnames", out)
}

// TestDashboardNames writes CheckName's verdicts into
// ui/src/lib/names.json, which the dashboard's image-name proposal
// (images.ts nameFromFile) is held to: it may only propose names the API
// accepts.
func TestDashboardNames(t *testing.T) {
	samples := []string{
		"debian-12", "a", "A.b_c-d", "0", strings.Repeat("n", MaxName), strings.Repeat("n", MaxName+1),
		"", "-x", ".hidden", "_a", "..", "a/b", "a b", "a:b", "ü", "a\nb", "image.raw", "9lives",
	}
	out := make([]nameSample, len(samples))
	for i, n := range samples {
		out[i] = nameSample{Name: n, OK: CheckName(n) == nil}
	}
	checkVerdicts(t, "names.json", "TestDashboardNames", out)
}

// checkVerdicts compares out with the dashboard's file of verdicts
// (writing it first with -update).
func checkVerdicts(t *testing.T, file, test string, out []nameSample) {
	t.Helper()
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	want := string(b) + "\n"
	path := filepath.Join("..", "ui", "src", "lib", file)
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./names -run %s -update)", err, test)
	}
	if string(got) != want {
		t.Fatalf("%s is out of date: run go test ./names -run %s -update", path, test)
	}
}
