package ipxe

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"text/template"
	"text/template/parse"
)

// A profile's script template is written by an administrator but run on
// every PXE boot of its machines, inside the request that asks for the
// script. text/template is a full language with no step limit and no
// context to cancel: `{{range 100000000000}}{{end}}` loops for hours
// without writing a byte (so an output limit never fires), and
// {{define}}/{{template}} recurse. Budgets on time would need a goroutine
// per render that cannot be stopped when the budget runs out.
//
// So a profile template is a restricted language instead: text, and field
// substitutions of TemplateData such as {{.MAC}} (with text/template's
// comments and {{- -}} trim markers, which the lexer resolves). It is
// parsed by text/template/parse and every node of the tree is checked;
// anything else — actions with pipelines, functions, variables, range, if,
// with, template, define, block — is refused with its line. Nothing lost:
// the values are few and validated, and iPXE itself has conditionals
// (iseq, goto) for what a script must decide at boot.
//
// The check runs when a profile is written (ValidateProfile) and again
// before every render, so a template stored before this rule, or written
// into the database by other means, is refused at boot (the machine gets
// ErrorScript) instead of being run. A checked tree is rendered by
// renderTree, one pass over its nodes: at most maxTemplate steps (every
// node takes at least one byte of the source) and at most maxScript bytes
// of output, whatever the template says.

// ErrTemplate wraps every refusal of a profile script template.
var ErrTemplate = errors.New("profile script template not allowed")

// maxTemplate bounds a template's source, as the API's profile body does.
const maxTemplate = 64 << 10

// maxScript bounds a rendered profile template.
const maxScript = 64 << 10

// templateFields are the names a template may substitute: the string
// fields of TemplateData, which is their one definition.
func templateFields() []string {
	t := reflect.TypeFor[TemplateData]()
	var out []string
	for i := range t.NumField() {
		if f := t.Field(i); f.IsExported() && f.Type.Kind() == reflect.String {
			out = append(out, f.Name)
		}
	}
	return out
}

// parseTemplate parses src and checks that it is only text and field
// substitutions.
func parseTemplate(src string) (*parse.Tree, error) {
	if len(src) > maxTemplate {
		return nil, fmt.Errorf("%w: the template is %d bytes, the limit is %d", ErrTemplate, len(src), maxTemplate)
	}
	t, err := template.New("script").Parse(src)
	if err != nil {
		return nil, err
	}
	if len(t.Templates()) != 1 || t.Tree == nil || t.Tree.Root == nil {
		// {{define}} and {{block}} add named templates.
		return nil, fmt.Errorf("%w: {{define}} and {{block}} are not allowed; %s", ErrTemplate, allowed())
	}
	for _, n := range t.Tree.Root.Nodes {
		if err := checkNode(t.Tree, n); err != nil {
			return nil, err
		}
	}
	return t.Tree, nil
}

// checkNode accepts a text node, or an action that is exactly one field
// of TemplateData.
func checkNode(tree *parse.Tree, n parse.Node) error {
	switch n := n.(type) {
	case *parse.TextNode:
		return nil
	case *parse.ActionNode:
		if _, ok := fieldOf(n); ok {
			return nil
		}
	}
	where, _ := tree.ErrorContext(n) // "script:line:column"
	where = "line " + strings.TrimPrefix(where, tree.ParseName+":")
	return fmt.Errorf("%w: %s: %s is not allowed; %s", ErrTemplate, where, quote(n.String()), allowed())
}

// fieldOf returns the field an action substitutes, if that is all it does.
func fieldOf(a *parse.ActionNode) (string, bool) {
	p := a.Pipe
	if p == nil || len(p.Decl) > 0 || p.IsAssign || len(p.Cmds) != 1 || len(p.Cmds[0].Args) != 1 {
		return "", false
	}
	f, ok := p.Cmds[0].Args[0].(*parse.FieldNode)
	if !ok || len(f.Ident) != 1 {
		return "", false
	}
	for _, name := range templateFields() {
		if f.Ident[0] == name {
			return name, true
		}
	}
	return "", false
}

func allowed() string {
	var b strings.Builder
	b.WriteString("a profile script may only substitute fields:")
	for _, f := range templateFields() {
		b.WriteString(" {{." + f + "}}")
	}
	return b.String()
}

// renderTree writes a checked tree with d's values: one pass over the
// nodes, refused once the output would pass maxScript.
func renderTree(tree *parse.Tree, d TemplateData) (string, error) {
	var b strings.Builder
	v := reflect.ValueOf(d)
	for _, n := range tree.Root.Nodes {
		var piece string
		switch n := n.(type) {
		case *parse.TextNode:
			piece = string(n.Text)
		case *parse.ActionNode:
			name, ok := fieldOf(n)
			if !ok {
				return "", fmt.Errorf("%w: %s", ErrTemplate, quote(n.String())) // parseTemplate refused it already
			}
			piece = v.FieldByName(name).String()
		default:
			return "", fmt.Errorf("%w: %s", ErrTemplate, quote(n.String()))
		}
		if b.Len()+len(piece) > maxScript {
			return "", fmt.Errorf("%w: the script is longer than %d bytes", ErrTemplate, maxScript)
		}
		b.WriteString(piece)
	}
	return b.String(), nil
}

// runTemplate renders a profile's own iPXE script. The template is the
// administrator's; the data is not, and was validated by templateData.
func runTemplate(profile, src string, d TemplateData) (string, error) {
	tree, err := parseTemplate(src)
	if err != nil {
		return "", fmt.Errorf("profile %s script: %w", quote(profile), err)
	}
	out, err := renderTree(tree, d)
	if err != nil {
		return "", fmt.Errorf("profile %s script: %w", quote(profile), err)
	}
	if !strings.HasPrefix(out, "#!ipxe") {
		out = "#!ipxe\n" + out
	}
	if !strings.HasSuffix(out, "\n") {
		out += "\n"
	}
	return out, nil
}
