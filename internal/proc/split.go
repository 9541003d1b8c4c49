package proc

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
)

// SplitArgs splits s into an argument vector with spiffe-helper's cmd_args
// rules, which are those of encoding/csv with a space as the separator:
//
//   - every space separates two arguments, so two spaces in a row make an
//     empty argument, and a leading or trailing space an empty first or
//     last argument;
//   - an argument that starts with a double quote runs to the next lone
//     double quote, which must be followed by a space or the end; inside
//     it, spaces and line breaks are literal and "" is one double quote;
//   - a double quote anywhere else in an argument is an error;
//   - single quotes and backslashes are ordinary characters;
//   - "\r\n" is read as "\n", and a "\r" at the very end is dropped;
//   - empty lines before the arguments are skipped, and the empty string
//     is no arguments at all.
//
// spiffe-helper reads one CSV record and silently ignores whatever follows
// the first unquoted line break. SplitArgs reports an error instead when
// anything but empty lines follows, and an error when s holds only line
// breaks (where spiffe-helper fails to start the command at every rotation).
func SplitArgs(s string) ([]string, error) {
	if s == "" {
		return []string{}, nil
	}
	r := csv.NewReader(strings.NewReader(s))
	r.Comma = ' '
	args, err := r.Read()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("splitting arguments: there are none, only line breaks")
	}
	if err != nil {
		return nil, fmt.Errorf("splitting arguments: %w", err)
	}
	if _, err := r.Read(); !errors.Is(err, io.EOF) {
		return nil, errors.New("splitting arguments: text follows the line break that ends them; put every argument on one line, or quote the line break")
	}
	return args, nil
}
