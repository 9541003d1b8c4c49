package conformance_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/svidagent/svidagent/conformance"
	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/sdk"
)

// counter is the smallest notifier an author might write: it counts the
// rotations it was told of, and takes one optional attribute.
type counter struct {
	mu     sync.Mutex
	prefix string
	seen   int
}

type counterConfig struct {
	Prefix string `json:"prefix"`
}

func (c *counter) Validate(js []byte) hostapi.FieldErrors {
	var fes hostapi.FieldErrors
	if _, err := decodeCounter(js); err != nil {
		fes.Add("", err.Error())
	}
	return fes
}

func (c *counter) Configure(_ context.Context, js []byte) error {
	cfg, err := decodeCounter(js)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.prefix = cfg.Prefix
	return nil
}

func (c *counter) Notify(_ context.Context, _ *hostapi.RotationEvent) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen++
	return nil
}

// decodeCounter rejects unknown attributes, as ABI.md requires.
func decodeCounter(js []byte) (counterConfig, error) {
	var cfg counterConfig
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(js, &raw); err != nil {
		return cfg, err
	}
	for k := range raw {
		if k != "prefix" {
			return cfg, fmt.Errorf("%s: unknown attribute", k)
		}
	}
	return cfg, json.Unmarshal(js, &cfg)
}

// ExampleCheck runs the suite over an in-process notifier, as a plugin
// author's test might before building it as WASM or go-plugin. Check
// returns a report; Run does the same as subtests of a *testing.T.
func ExampleCheck() {
	report, err := conformance.Check(context.Background(), conformance.Target{
		Kind:       hostapi.KindNotifier,
		NewImpl:    func() any { return &counter{} },
		Info:       sdk.Info{Name: "counter", Version: "1.0.0"},
		ConfigJSON: []byte(`{"prefix":"x"}`),
	})
	if err != nil {
		panic(err) // the target itself is unusable
	}
	for _, r := range report.Results {
		if r.Status == conformance.StatusFail {
			fmt.Println(r.Name, r.Reason)
		}
	}
	fmt.Println("failed:", report.Failed())
	// Output: failed: false
}
