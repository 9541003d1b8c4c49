package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"github.com/svidagent/svidagent/internal/testkit"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestRepeatHandler(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	log := slog.New(newRepeatHandler(slog.NewJSONHandler(&buf, nil), time.Minute, func() time.Time { return now }))
	a, b := log.With("plugin", "a"), log.With("plugin", "b")
	down, other := errors.New("webhook down"), errors.New("timeout")

	for range 5 {
		a.Error("notifying failed", "error", down, "duration", time.Second)
	}
	b.Error("notifying failed", "error", down)      // another plugin
	a.Error("notifying failed", "error", other)     // another error
	a.Info("credentials delivered", "serial", "01") // no error: never held back
	a.Info("credentials delivered", "serial", "01")
	now = now.Add(time.Minute)
	a.Error("notifying failed", "error", down) // the window is over: logged, with the count
	a.Error("notifying failed", "error", down) // a new window

	type rec struct {
		Msg        string `json:"msg"`
		Plugin     string `json:"plugin"`
		Error      string `json:"error"`
		Suppressed *int   `json:"repeats_suppressed"`
	}
	var got []rec
	for line := range strings.Lines(buf.String()) {
		var r rec
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	four := 4
	want := []rec{
		{Msg: "notifying failed", Plugin: "a", Error: "webhook down"},
		{Msg: "notifying failed", Plugin: "b", Error: "webhook down"},
		{Msg: "notifying failed", Plugin: "a", Error: "timeout"},
		{Msg: "credentials delivered", Plugin: "a"},
		{Msg: "credentials delivered", Plugin: "a"},
		{Msg: "notifying failed", Plugin: "a", Error: "webhook down", Suppressed: &four},
	}
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d:\n%s", len(got), len(want), &buf)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Msg != w.Msg || g.Plugin != w.Plugin || g.Error != w.Error || (g.Suppressed == nil) != (w.Suppressed == nil) ||
			(g.Suppressed != nil && *g.Suppressed != *w.Suppressed) {
			t.Errorf("record %d = %+v, want %+v", i, g, w)
		}
	}
}

// TestRepeatHandlerHammer: concurrent loggers under -race.
func TestRepeatHandlerHammer(t *testing.T) {
	var buf testkit.Buffer
	log := slog.New(newRepeatHandler(slog.NewTextHandler(&buf, nil), time.Hour, time.Now))
	done := make(chan struct{})
	for g := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			l := log.With("g", g%2)
			for range 200 {
				l.Error("failed", "error", "same")
			}
		}()
	}
	for range 8 {
		<-done
	}
	if n := strings.Count(buf.String(), "failed"); n != 2 {
		t.Errorf("%d records for 2 distinct failures, want 2", n)
	}
}
