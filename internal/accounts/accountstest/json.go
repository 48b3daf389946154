package accountstest

import (
	"encoding/json"
	"reflect"
)

// sameJSON compares JSON documents by value (PostgreSQL's jsonb reorders keys).
func sameJSON(a []byte, b string) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}
