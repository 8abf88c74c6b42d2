// render: renders a Helm chart's templates the way `helm template` does,
// for a machine without helm (it is not in Debian): Go's text/template is
// Helm's template engine; the Sprig functions the chart calls are written
// here (include, required, default, quote, toJson, toYaml, indent, nindent,
// trunc, trimSuffix, contains). A function the chart calls that is not here is a
// parse error, so the chart cannot quietly use more than is checked.
//
//	go run tests/k8s/render.go CHART_DIR CHART_JSON VALUES_JSON RELEASE NAMESPACE
//
// CHART_JSON and VALUES_JSON are Chart.yaml and values.yaml converted to
// JSON (Go's standard library has no YAML parser). The rendered documents
// go to stdout, each after "# Source: NAME/templates/FILE", in file-name
// order; empty ones are left out.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"
)

func load(path string) map[string]interface{} {
	data, err := os.ReadFile(path)
	if err != nil {
		fail(err)
	}
	var out map[string]interface{}
	if err := json.Unmarshal(data, &out); err != nil {
		fail(fmt.Errorf("%s: %v", path, err))
	}
	return out
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "render:", err)
	os.Exit(1)
}

func empty(v interface{}) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case bool:
		return !x
	case float64:
		return x == 0
	case []interface{}:
		return len(x) == 0
	case map[string]interface{}:
		return len(x) == 0
	}
	return false
}

// Block-style YAML: keys in order, strings double-quoted (JSON's quoting,
// which YAML reads the same).
func toYaml(v interface{}) string {
	switch x := v.(type) {
	case map[string]interface{}:
		if len(x) == 0 {
			return "{}"
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var lines []string
		for _, k := range keys {
			lines = append(lines, entry(k+":", x[k]))
		}
		return strings.Join(lines, "\n")
	case []interface{}:
		if len(x) == 0 {
			return "[]"
		}
		var lines []string
		for _, item := range x {
			sub := toYaml(item)
			lines = append(lines, "- "+strings.ReplaceAll(sub, "\n", "\n  "))
		}
		return strings.Join(lines, "\n")
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

func entry(key string, v interface{}) string {
	switch x := v.(type) {
	case map[string]interface{}:
		if len(x) > 0 {
			return key + "\n" + indent(2, toYaml(x))
		}
	case []interface{}:
		if len(x) > 0 {
			return key + "\n" + toYaml(x)
		}
	}
	return key + " " + toYaml(v)
}

func indent(n int, s string) string {
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(s, "\n", "\n"+pad)
}

func main() {
	if len(os.Args) != 6 {
		fail(fmt.Errorf("usage: render CHART_DIR CHART_JSON VALUES_JSON RELEASE NAMESPACE"))
	}
	dir, chartFile, valuesFile, release, namespace := os.Args[1], os.Args[2], os.Args[3], os.Args[4], os.Args[5]
	chart := load(chartFile)
	top := map[string]interface{}{
		"Values": load(valuesFile),
		"Release": map[string]interface{}{
			"Name": release, "Namespace": namespace, "Service": "Helm", "IsInstall": true,
		},
		"Chart": map[string]interface{}{
			"Name": chart["name"], "Version": chart["version"], "AppVersion": chart["appVersion"],
		},
	}
	root := template.New("chart").Option("missingkey=zero")
	root.Funcs(template.FuncMap{
		"include": func(name string, data interface{}) (string, error) {
			var b bytes.Buffer
			err := root.ExecuteTemplate(&b, name, data)
			return b.String(), err
		},
		"required": func(msg string, v interface{}) (interface{}, error) {
			if empty(v) {
				return nil, fmt.Errorf("%s", msg)
			}
			return v, nil
		},
		"default": func(d interface{}, v ...interface{}) interface{} {
			if len(v) == 0 || empty(v[0]) {
				return d
			}
			return v[0]
		},
		"quote": func(v interface{}) string { return fmt.Sprintf("%q", fmt.Sprint(v)) },
		"toJson": func(v interface{}) (string, error) {
			b, err := json.Marshal(v)
			return string(b), err
		},
		"toYaml":  func(v interface{}) string { return toYaml(v) },
		"indent":  func(n int, s string) string { return indent(n, s) },
		"nindent": func(n int, s string) string { return "\n" + indent(n, s) },
		"trunc": func(n int, s string) string {
			if len(s) > n {
				return s[:n]
			}
			return s
		},
		"trimSuffix": func(suffix, s string) string { return strings.TrimSuffix(s, suffix) },
		"contains":   func(sub, s string) bool { return strings.Contains(s, sub) },
	})
	files, err := filepath.Glob(filepath.Join(dir, "templates", "*"))
	if err != nil {
		fail(err)
	}
	sort.Strings(files)
	var docs []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			fail(err)
		}
		if _, err := root.New(filepath.Base(f)).Parse(string(data)); err != nil {
			fail(err)
		}
		if !strings.HasPrefix(filepath.Base(f), "_") {
			docs = append(docs, filepath.Base(f))
		}
	}
	name, _ := chart["name"].(string)
	for _, d := range docs {
		var b bytes.Buffer
		if err := root.ExecuteTemplate(&b, d, top); err != nil {
			fail(err)
		}
		out := strings.ReplaceAll(b.String(), "<no value>", "")
		if strings.TrimSpace(out) == "" {
			continue
		}
		fmt.Printf("---\n# Source: %s/templates/%s\n%s\n", name, d, strings.TrimRight(strings.TrimLeft(out, "\n"), "\n"))
	}
}
