package subproc

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestPin covers pin's paths: the first pin, the one-pass check of an
// existing copy, and the copies it must replace. The executable is larger
// than one chunk so that the comparison crosses chunk boundaries.
func TestPin(t *testing.T) {
	exe := bytes.Repeat([]byte("0123456789abcdef"), pinChunk/16*2+7)
	h := sha256.Sum256(exe)
	sum := hex.EncodeToString(h[:])
	flipped := bytes.Clone(exe)
	flipped[pinChunk+3] ^= 1
	tests := []struct {
		name string
		copy []byte      // the pinned copy before pin; nil: none
		mode os.FileMode // of the copy
		want string
	}{
		{name: "first start", want: sum},
		{name: "copy matches", copy: exe, mode: 0o700, want: sum},
		{name: "want in upper case", copy: exe, mode: 0o700, want: strings.ToUpper(sum)},
		{name: "copy altered in its second chunk", copy: flipped, mode: 0o700, want: sum},
		{name: "copy longer", copy: append(bytes.Clone(exe), 'x'), mode: 0o700, want: sum},
		{name: "copy shorter", copy: exe[:len(exe)-1], mode: 0o700, want: sum},
		{name: "copy too open", copy: exe, mode: 0o755, want: sum},
		{name: "no checksum", copy: exe, mode: 0o700},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "plugin")
			if err := os.WriteFile(path, exe, 0o755); err != nil {
				t.Fatal(err)
			}
			state := t.TempDir()
			want := filepath.Join(state, "plugins", sum)
			if tt.copy != nil {
				if err := os.MkdirAll(filepath.Dir(want), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(want, tt.copy, tt.mode); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(want, tt.mode); err != nil { // past the umask
					t.Fatal(err)
				}
			}
			pinned, got, err := pin(path, tt.want, state)
			if err != nil {
				t.Fatalf("pin: %v", err)
			}
			if pinned != want || got != sum {
				t.Errorf("pin = %s, %s; want %s, %s", pinned, got, want, sum)
			}
			b, err := os.ReadFile(pinned)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, exe) {
				t.Error("the pinned copy does not hold the executable's bytes")
			}
			if fi, err := os.Stat(pinned); err != nil || fi.Mode().Perm() != 0o700 {
				t.Errorf("pinned copy: %v, %v; want mode 0700", fi.Mode(), err)
			}
		})
	}
}

// TestPinMismatchKeepsCopy checks that an executable that no longer
// matches its checksum is refused, with both hashes, whether or not an
// earlier copy exists, and that the copy is left alone.
func TestPinMismatchKeepsCopy(t *testing.T) {
	exe := bytes.Repeat([]byte("plugin"), 1000)
	h := sha256.Sum256(exe)
	sum := hex.EncodeToString(h[:])
	changed := append(bytes.Clone(exe), '!')
	h = sha256.Sum256(changed)
	changedSum := hex.EncodeToString(h[:])
	for _, withCopy := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "plugin")
		state := t.TempDir()
		if withCopy {
			if err := os.WriteFile(path, exe, 0o755); err != nil {
				t.Fatal(err)
			}
			if _, _, err := pin(path, sum, state); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(path, changed, 0o755); err != nil {
			t.Fatal(err)
		}
		_, got, err := pin(path, sum, state)
		if err == nil || !strings.Contains(err.Error(), sum) || !strings.Contains(err.Error(), changedSum) || got != changedSum {
			t.Errorf("with copy %v: pin of a changed executable = %q, %v; want both hashes in an error", withCopy, got, err)
		}
		b, err := os.ReadFile(filepath.Join(state, "plugins", sum))
		if withCopy && (err != nil || !bytes.Equal(b, exe)) {
			t.Errorf("the earlier copy was changed: %v", err)
		}
		if !withCopy && err == nil {
			t.Error("a refused executable was pinned")
		}
	}
}

// TestPinWhileForking pins fresh executables and runs each at once while
// other goroutines start processes without pause: the way background
// plugin starts overlap. A child forked while a copy's write descriptor
// was open would hold it until its own exec, and running the copy in that
// window fails with ETXTBSY ("text file busy"); CI saw it as a plugin that
// never started.
func TestPinWhileForking(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatalf("the test needs sh: %v", err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := exec.Command(sh, "-c", ":").Run(); err != nil {
					t.Errorf("background start: %v", err)
					return
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	state, src := t.TempDir(), t.TempDir()
	for i := range 300 {
		path := filepath.Join(src, fmt.Sprintf("plugin-%d", i))
		script := fmt.Sprintf("#!%s\n# copy %d\nexit 0\n", sh, i)
		if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		pinned, _, err := pin(path, "", state)
		if err != nil {
			t.Fatalf("pin %d: %v", i, err)
		}
		if err := exec.Command(pinned).Run(); err != nil {
			t.Fatalf("running pinned copy %d: %v", i, err)
		}
	}
}
