package ipxe

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/foundry-appliance/foundry/store"
)

var sampleData = TemplateData{MAC: testMAC, Hostname: "web01.lab.example", IP: "10.77.0.101",
	Cluster: "lab", Profile: "p", BaseURL: testBase}

func TestTemplateLanguage(t *testing.T) {
	tests := []struct {
		name, src string
		ok        bool
		want      string // part of the error, or of the output
	}{
		{"text only", "#!ipxe\necho hi\n", true, "echo hi"},
		{"every field", "{{.MAC}} {{.Hostname}} {{.IP}} {{.Cluster}} {{.Profile}} {{.BaseURL}}", true,
			testMAC + " web01.lab.example 10.77.0.101 lab p " + testBase},
		{"trim markers and comments", "a {{- .MAC -}} b{{/* note */}}c", true, "a" + testMAC + "bc"},
		{"range over a huge integer", "{{range 100000000000}}{{end}}", false, "{{range 100000000000}}"},
		{"range with a body", "#!ipxe\n{{range 100000}}echo 0123456789\n{{end}}", false, "line"},
		{"if", "{{if .MAC}}x{{end}}", false, "not allowed"},
		{"with", "{{with .IP}}{{.}}{{end}}", false, "not allowed"},
		{"define and template", `{{define "a"}}{{template "a"}}{{end}}{{template "a"}}`, false, "not allowed"},
		{"block", `{{block "b" .}}x{{end}}`, false, "not allowed"},
		{"dot", "{{.}}", false, "not allowed"},
		{"function call", `{{printf "%s" .MAC}}`, false, "not allowed"},
		{"pipeline", "{{.MAC | html}}", false, "not allowed"},
		{"variable", "{{$x := .MAC}}{{$x}}", false, "not allowed"},
		{"nested field", "{{.MAC.X}}", false, "not allowed"},
		{"unknown field", "{{.Secret}}", false, "not allowed"},
		{"literal", `{{"x"}}`, false, "not allowed"},
		{"does not parse", "{{.MAC", false, "unclosed action"},
		{"source too long", strings.Repeat("x", maxTemplate+1), false, "limit"},
		{"output too long", strings.Repeat("{{.BaseURL}}", maxScript/len(testBase)+1), false, "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runTemplate("p", tt.src, sampleData)
			if tt.ok {
				if err != nil || !strings.Contains(out, tt.want) || !strings.HasPrefix(out, "#!ipxe\n") {
					t.Fatalf("runTemplate = %q, %v; want output containing %q", out, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("runTemplate = %q, %v; want an error containing %q", out, err, tt.want)
			}
			if tt.want != "unclosed action" && !errors.Is(err, ErrTemplate) {
				t.Errorf("error %v is not ErrTemplate", err)
			}
		})
	}
}

// TestTemplateFieldsAreTemplateData: the names a template may use are
// exactly TemplateData's fields.
func TestTemplateFieldsAreTemplateData(t *testing.T) {
	if got := strings.Join(templateFields(), ","); got != "MAC,Hostname,IP,Cluster,Profile,BaseURL" {
		t.Fatalf("templateFields = %s", got)
	}
}

// TestStoredHeavyTemplateFailsFast: a spinning template already in the
// store (written before the rule, or around the API) is refused at boot
// before it runs; the machine gets an error, not a hung request.
func TestStoredHeavyTemplateFailsFast(t *testing.T) {
	p := &store.Profile{Name: "old", Kind: store.ProfileNetboot, Script: "#!ipxe\n{{range 100000000000}}{{end}}"}
	in := input(machine(store.StateReady, "old", false), new(int))
	in.Profile = p
	start := time.Now()
	done := make(chan error, 1)
	go func() { _, err := Render(in); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrTemplate) {
			t.Fatalf("Render = %v, want ErrTemplate", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Render of a spinning template did not return within 5s")
	}
	t.Logf("refused in %v", time.Since(start))
	if err := ValidateProfile(*p); !errors.Is(err, ErrTemplate) {
		t.Errorf("ValidateProfile = %v, want ErrTemplate", err)
	}
}

// renderBudget is what any accepted template must render within: its
// output is bounded by maxScript (plus the #!ipxe line and a newline), and
// its time by one pass over at most maxTemplate nodes; a second is far
// above that even on a loaded machine.
const renderBudget = time.Second

// checkAccepted renders src, and if the language accepts it, checks the
// budget and that text/template itself renders the same text: the
// restricted renderer changes what may run, not what it means.
func checkAccepted(t *testing.T, src string) bool {
	t.Helper()
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		out, err := runTemplate("p", src, sampleData)
		done <- result{out, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * renderBudget):
		t.Fatalf("template %q did not finish rendering", src)
	}
	took := time.Since(start)
	if r.err != nil {
		return false
	}
	if took > renderBudget {
		t.Errorf("template %q took %v, budget %v", src, took, renderBudget)
	}
	if len(r.out) > maxScript+len("#!ipxe\n")+1 {
		t.Errorf("template %q rendered %d bytes, budget %d", src, len(r.out), maxScript)
	}
	tt, err := template.New("x").Option("missingkey=error").Parse(src)
	if err != nil {
		t.Fatalf("accepted %q, which text/template does not parse: %v", src, err)
	}
	var b strings.Builder
	if err := tt.Execute(&b, sampleData); err != nil {
		t.Fatalf("accepted %q, which text/template cannot run: %v", src, err)
	}
	want := b.String()
	if !strings.HasPrefix(want, "#!ipxe") {
		want = "#!ipxe\n" + want
	}
	if !strings.HasSuffix(want, "\n") {
		want += "\n"
	}
	if r.out != want {
		t.Errorf("template %q: rendered %q, text/template renders %q", src, r.out, want)
	}
	return true
}

// goodPieces build templates the language accepts: text (with the
// characters that matter to it), every field, trim markers and comments.
var goodPieces = []string{
	"#!ipxe\n", "echo ", "kernel ", " ", "\n", "x", "{", "}", "$", "{{.MAC}}", "{{.Hostname}}", "{{.IP}}",
	"{{.Cluster}}", "{{.Profile}}", "{{.BaseURL}}", "{{- .MAC}}", "{{.IP -}}", "{{/* c */}}", "{{- /* c */ -}}",
}

// badPieces are every other construct text/template has, and broken ones.
var badPieces = []string{
	"{{.}}", "{{.Nope}}", "{{.MAC.X}}", "{{range 100000000000}}", "{{range $i, $e := 99999999}}", "{{end}}",
	"{{if .MAC}}", "{{else}}", "{{with .IP}}", `{{define "a"}}`, `{{template "a"}}`, `{{block "b" .}}`,
	`{{printf "%s" .MAC}}`, "{{.MAC | html}}", "{{$x := 1}}", "{{$x}}", "{{len .MAC}}", `{{"lit"}}`,
	"{{break}}", "{{continue}}", "{{", "}}", "{{nil}}", "{{call .MAC}}",
}

// TestTemplatePropertyBudget: whatever a template is made of, either it is
// refused, or it renders within the budget to what text/template renders.
func TestTemplatePropertyBudget(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 8))
	n := 3000
	if testing.Short() {
		n = 500
	}
	accepted := 0
	for range n {
		var b strings.Builder
		for range 1 + r.IntN(12) {
			if r.IntN(8) == 0 {
				b.WriteString(badPieces[r.IntN(len(badPieces))])
			} else {
				b.WriteString(goodPieces[r.IntN(len(goodPieces))])
			}
		}
		if checkAccepted(t, b.String()) {
			accepted++
		}
	}
	// The largest accepted template: the source limit, all substitutions.
	big := strings.Repeat("{{.IP}}", maxTemplate/len("{{.IP}}"))
	checkAccepted(t, big)
	if accepted < n/5 || accepted > n*4/5 {
		t.Errorf("only %d of %d random templates were accepted; the property is hardly tested", accepted, n)
	}
	t.Logf("%d of %d random templates accepted", accepted, n)
}

// FuzzTemplate checks the same property on fuzzed sources.
func FuzzTemplate(f *testing.F) {
	for _, p := range append(goodPieces, badPieces...) {
		f.Add(p)
	}
	f.Add(profiles["coreos"].Script)
	f.Add("{{range 100000000000}}{{end}}")
	f.Fuzz(func(t *testing.T, src string) {
		checkAccepted(t, src)
	})
}
