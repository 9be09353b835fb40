package specs

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
)

// validateValues checks values against the chart's values.schema.json, as
// chartutil.ValidateAgainstSchema does and with the same message, but compiles each schema once:
// Helm compiles it again on every call, which was the largest single cost of a reconcile (a
// sixth of the operator's CPU while servers converge). The Helm actions skip their own check
// (helmext), since every values they get were checked here.
func validateValues(chrt *chart.Chart, values chartutil.Values) error {
	if chrt.Schema == nil || len(chrt.Dependencies()) > 0 {
		return chartutil.ValidateAgainstSchema(chrt, values)
	}
	schema, err := compiledSchema(chrt.Schema)
	if err != nil {
		return chartutil.ValidateAgainstSchema(chrt, values) // Helm's loaders (remote $refs)
	}
	if err := schema.Validate(values.AsMap()); err != nil {
		msg := strings.TrimPrefix(err.Error(), "jsonschema validation failed with 'file:///values.schema.json#'\n")
		return fmt.Errorf("%s:\n%s\n", chrt.Name(), msg) //nolint:staticcheck // Helm's message, newline included
	}
	return nil
}

// schemas holds the compiled schemas by their JSON text (the operator has one chart).
var schemas sync.Map // string -> *jsonschema.Schema

func compiledSchema(raw []byte) (*jsonschema.Schema, error) {
	if s, ok := schemas.Load(string(raw)); ok {
		return s.(*jsonschema.Schema), nil
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(noRemoteLoader{})
	if err := c.AddResource("file:///values.schema.json", doc); err != nil {
		return nil, err
	}
	s, err := c.Compile("file:///values.schema.json")
	if err != nil {
		return nil, err
	}
	schemas.Store(string(raw), s)
	return s, nil
}

// noRemoteLoader refuses every reference outside the schema itself.
type noRemoteLoader struct{}

func (noRemoteLoader) Load(url string) (any, error) {
	return nil, errors.New("not loaded: " + url)
}
