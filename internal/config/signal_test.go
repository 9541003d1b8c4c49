package config_test

import (
	"strings"
	"testing"

	"github.com/svidagent/svidagent/internal/config"
)

// TestHelperSignalNames: helper.conf's renew_signal takes a signal name
// with or without SIG, in any case, as the README says and the native
// notifiers do.
func TestHelperSignalNames(t *testing.T) {
	tests := []struct {
		signal  string
		wantErr string
	}{
		{signal: "SIGHUP"},
		{signal: "HUP"},
		{signal: "hup"},
		{signal: "sighup"},
		{signal: "Hup"},
		{signal: "SigUsr1"},
		{signal: "usr2"},
		{signal: " SIGTERM "},
		{signal: "SIGUSER1", wantErr: `Did you mean "SIGUSR1"?`},
		{signal: "user1", wantErr: `Did you mean "SIGUSR1"?`},
		{signal: "1", wantErr: "is not a signal name"},
	}
	for _, tt := range tests {
		t.Run(tt.signal, func(t *testing.T) {
			for _, with := range []string{"pid_file_name = \"app.pid\"\n", "cmd = \"/bin/true\"\n"} {
				src := x509Names + with + "renew_signal = \"" + tt.signal + "\"\n"
				_, err := config.Parse([]byte(src), "helper.conf")
				if tt.wantErr == "" {
					if err != nil {
						t.Fatalf("%sParse: %s", with, config.FormatError(err, nil))
					}
					continue
				}
				if got := config.FormatError(err, nil); err == nil || !strings.Contains(got, tt.wantErr) || !strings.Contains(got, "helper.conf:5:16") {
					t.Fatalf("%sParse error =\n%s\nwant %q at helper.conf:5:16", with, got, tt.wantErr)
				}
			}
		})
	}
}
