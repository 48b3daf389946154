package httpapi

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// readLimited reads what buf.ReadFrom(io.LimitReader(src, limit)) reads, and fails the same.
func TestReadLimitedAsReadFrom(t *testing.T) {
	long := strings.Repeat("0123456789", 300)
	boom := errors.New("boom")
	for _, limit := range []int64{0, 1, 5, 511, 512, 513, 2999, 3000, 3001, 10000} {
		for name, src := range map[string]func() io.Reader{
			"plain":   func() io.Reader { return strings.NewReader(long) },
			"onebyte": func() io.Reader { return iotest.OneByteReader(strings.NewReader(long)) },
			"dataerr": func() io.Reader { return iotest.DataErrReader(strings.NewReader(long)) },
			"error":   func() io.Reader { return io.MultiReader(strings.NewReader(long[:700]), iotest.ErrReader(boom)) },
		} {
			var want, got bytes.Buffer
			wn, werr := want.ReadFrom(io.LimitReader(src(), limit))
			gn, gerr := readLimited(&got, src(), limit, nil)
			if gn != wn || !errors.Is(gerr, werr) || (werr == nil) != (gerr == nil) || got.String() != want.String() {
				t.Errorf("%s, limit %d: %d %v %d bytes; ReadFrom: %d %v %d bytes", name, limit, gn, gerr, got.Len(), wn, werr, want.Len())
			}
		}
	}
}
