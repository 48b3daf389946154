package posthog

import (
	"bytes"
	"encoding/base64"
	"net/url"

	"github.com/evp-dev/evp/internal/sdkevent"
)

// FormData returns the JSON that a form body (application/x-www-form-urlencoded) carries in
// its data field, as posthog-js sends events with sendBeacon when a page closes: the JSON
// in base64 (compression "base64", from the URL or the form), or as it is. lz64, which old
// posthog-js versions sent, is refused: evp's configuration offers them gzip instead.
func FormData(body []byte, compression string) ([]byte, error) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, sdkevent.Invalid("body", "must be a form: data=<the JSON, in base64>")
	}
	if compression == "" {
		compression = form.Get("compression")
	}
	if compression == "lz64" {
		return nil, sdkevent.Invalid("compression", "lz64 is not supported: send gzip-js, base64 or plain JSON")
	}
	data := bytes.TrimSpace([]byte(form.Get("data")))
	if len(data) == 0 {
		return nil, sdkevent.Invalid("data", "is required: the events as JSON, in base64")
	}
	if data[0] == '{' || data[0] == '[' {
		return data, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if out, err := enc.DecodeString(string(data)); err == nil {
			return out, nil
		}
	}
	return nil, sdkevent.Invalid("data", "must be the events as JSON, in base64")
}
