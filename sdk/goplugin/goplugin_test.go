package goplugin

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/svidagent/svidagent/sdk"
)

func TestHandshake(t *testing.T) {
	h := Handshake()
	if h.ProtocolVersion != 1 || h.MagicCookieKey != "SVIDAGENT_PLUGIN" || h.MagicCookieValue != "v1" {
		t.Errorf("Handshake() = %+v, want protocol 1 and SVIDAGENT_PLUGIN=v1 (hostapi/ABI.md §8)", h)
	}
}

func TestLoggerWritesHCLogJSON(t *testing.T) {
	tests := []struct {
		level slog.Level
		want  string
	}{
		{slog.LevelDebug - 4, "trace"},
		{slog.LevelDebug, "debug"},
		{slog.LevelInfo, "info"},
		{slog.LevelWarn, "warn"},
		{slog.LevelError, "error"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			var buf bytes.Buffer
			newLogger(&buf, slog.LevelDebug-4).Log(t.Context(), tt.level, "hello", "k", "v")
			var m map[string]any
			if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
				t.Fatalf("decoding %q: %v", buf.String(), err)
			}
			if m["@level"] != tt.want || m["@message"] != "hello" || m["@timestamp"] == nil || m["k"] != "v" {
				t.Errorf("logged %v, want @level=%s @message=hello @timestamp and k=v", m, tt.want)
			}
		})
	}
}

func TestRawCodec(t *testing.T) {
	c := rawCodec{}
	in := rawMsg("payload")
	b, err := c.Marshal(&in)
	if err != nil || string(b) != "payload" {
		t.Fatalf("Marshal = %q, %v", b, err)
	}
	var out rawMsg
	if err := c.Unmarshal([]byte("answer"), &out); err != nil || string(out) != "answer" {
		t.Fatalf("Unmarshal = %q, %v", out, err)
	}
	if _, err := c.Marshal("not raw"); err == nil {
		t.Error("Marshal of a non-raw message succeeded")
	}
	if c.Name() != "proto" {
		t.Errorf("Name() = %q", c.Name())
	}
}

func TestNewGRPCPluginRejectsBadImpl(t *testing.T) {
	if _, err := newGRPCPlugin(sdkInfo("x"), struct{}{}); err == nil {
		t.Error("a value of no plugin kind was accepted")
	}
}

func sdkInfo(name string) sdk.Info { return sdk.Info{Name: name} }
