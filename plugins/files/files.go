package files

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/svidagent/svidagent/hostapi"
	"github.com/svidagent/svidagent/internal/registry"
)

// ID is the module's registry ID.
const ID = "writer.files"

func init() {
	registry.RegisterWriter("files", DefaultConfig, func(c *Config, env registry.Env) (hostapi.Writer, error) {
		return New(c, env.Logger)
	})
}

// Writer is the files writer. It is safe for concurrent use: Writes are
// serialised, so two Writes never interleave their renames.
type Writer struct {
	cfg Config
	log *slog.Logger

	// rename replaces a target during a commit. It is os.Rename, swapped
	// by tests to force a failure in the middle of a commit.
	rename func(oldpath, newpath string) error
	// sync makes a file or directory durable. It is (*os.File).Sync,
	// swapped by tests to force a failure in any of a Write's fsyncs.
	sync func(*os.File) error

	mu sync.Mutex // serialises Write
}

var _ hostapi.Writer = (*Writer)(nil)

// New returns a Writer for cfg, which it validates. A nil logger discards.
// The directory is created on the first Write, not here, so that building
// the agent has no side effects.
func New(cfg *Config, logger *slog.Logger) (*Writer, error) {
	if cfg == nil {
		cfg = DefaultConfig()
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("validating %s config: %w", ID, err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Writer{cfg: *cfg, log: logger, rename: os.Rename, sync: (*os.File).Sync}, nil
}

// Write delivers set to the configured directory in the configured layout.
// Every file is replaced atomically, with its configured mode from the
// moment it exists; when Write fails, every file delivered before is left
// as it was and no temporary file remains.
func (w *Writer) Write(ctx context.Context, set *hostapi.CredentialSet) (*hostapi.WriteResult, error) {
	if set == nil {
		return nil, fmt.Errorf("writing credentials: no credential set")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("writing credentials: %w", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()

	if err := os.MkdirAll(w.cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating directory %q: %w", w.cfg.Dir, err)
	}

	var (
		paths []string
		err   error
	)
	rev, spiffeFS := spiffeFSRevision(w.cfg.Layout)
	switch {
	case spiffeFS:
		paths, err = w.writeSPIFFEFS(set, rev)
	case w.cfg.Layout == LayoutData:
		var entries []entry
		entries, err = w.planFlat(set)
		if err == nil {
			paths, err = w.writeData(entries)
		}
	default:
		var entries []entry
		entries, err = w.planFlat(set)
		if err == nil {
			for i := range entries {
				entries[i].dir = w.cfg.Dir
			}
			paths, err = w.commit(entries)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("writing credentials to %q: %w", w.cfg.Dir, err)
	}
	return &hostapi.WriteResult{Paths: paths}, nil
}

// entry is one file a Write replaces (or, with remove, deletes).
type entry struct {
	dir    string
	name   string
	data   []byte
	mode   fs.FileMode
	remove bool
}

func (e entry) path() string { return filepath.Join(e.dir, e.name) }
