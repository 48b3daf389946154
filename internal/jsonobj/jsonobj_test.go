package jsonobj

import (
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"
)

func TestMembers(t *testing.T) {
	obj := []byte(` { "a" : 1 , "b\u0022":{"x":["}",{"y":"\"]"}]}, "c":"s,}" ,"d":[1, 2],"e":null,"f":-1.5e3 } `)
	var keys []string
	var vals []string
	for _, m := range Members(obj) {
		keys = append(keys, string(m.Key))
		vals = append(vals, string(m.Value))
	}
	if want := []string{"a", `b"`, "c", "d", "e", "f"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("keys %q, want %q", keys, want)
	}
	if want := []string{"1", `{"x":["}",{"y":"\"]"}]}`, `"s,}"`, "[1, 2]", "null", "-1.5e3"}; !reflect.DeepEqual(vals, want) {
		t.Errorf("values %q, want %q", vals, want)
	}
	if Members([]byte(`[1]`)) != nil || Members([]byte(` {} `)) == nil || len(Members([]byte(`{}`))) != 0 {
		t.Error("want nil for what is not an object, no members for an empty one")
	}
	if got := string(Find(obj, "c")); got != `"s,}"` {
		t.Errorf("Find = %s", got)
	}
}

// Without keeps every other member as written, whichever members it drops, and the result
// is the same object encoding/json reads less those members.
func TestWithout(t *testing.T) {
	obj := []byte(`{"a":1, "b":{"c":2}, "d":"x", "e":[3]}`)
	ms := Members(obj)
	for _, drop := range [][]string{{}, {"a"}, {"e"}, {"b", "e"}, {"a", "b", "d", "e"}, {"a", "d"}} {
		got := NewBuffer(len(obj)).Without(obj, ms, "", func(k []byte) bool {
			for _, d := range drop {
				if string(k) == d {
					return true
				}
			}
			return false
		})
		var gotMap, wantMap map[string]any
		if err := json.Unmarshal(got, &gotMap); err != nil {
			t.Fatalf("drop %v: %s is not JSON: %v", drop, got, err)
		}
		_ = json.Unmarshal(obj, &wantMap)
		for _, d := range drop {
			delete(wantMap, d)
		}
		if !reflect.DeepEqual(gotMap, wantMap) {
			t.Errorf("drop %v: %s", drop, got)
		}
	}
}

// FuzzMembers: on any valid object of valid UTF-8, the members found are those encoding/json finds.
func FuzzMembers(f *testing.F) {
	f.Add([]byte(`{"a":1,"b":[{"c":"]"}],"d":"\\"}`))
	f.Fuzz(func(t *testing.T, obj []byte) {
		var want map[string]json.RawMessage
		if !utf8.Valid(obj) || json.Unmarshal(obj, &want) != nil || want == nil {
			return
		}
		got := map[string]string{}
		for _, m := range Members(obj) {
			if !json.Valid(m.Value) {
				t.Fatalf("%q: member %q has value %q", obj, m.Key, m.Value)
			}
			got[string(m.Key)] = string(m.Value) // the last of repeated keys wins, as for encoding/json
		}
		if len(got) != len(want) {
			t.Fatalf("%q: %d members, want %d", obj, len(got), len(want))
		}
		for k, v := range want {
			if got[k] != string(v) {
				t.Fatalf("%q: %q = %q, want %q", obj, k, got[k], v)
			}
		}
	})
}

func TestElementsAndString(t *testing.T) {
	var got []string
	for _, e := range Elements([]byte(` [ {"a":[1,"]"]} , "x\"y", 3 ,null] `)) {
		got = append(got, string(e))
	}
	if want := []string{`{"a":[1,"]"]}`, `"x\"y"`, "3", "null"}; !reflect.DeepEqual(got, want) {
		t.Errorf("elements %q, want %q", got, want)
	}
	if Elements([]byte(`{}`)) != nil || len(Elements([]byte(`[]`))) != 0 {
		t.Error("not an array, or an empty one: want no elements")
	}
	for raw, want := range map[string]string{`"plain"`: "plain", `"a\u00e9\n"`: "a\u00e9\n"} {
		_ = want
		var std string
		_ = json.Unmarshal([]byte(raw), &std)
		if s, ok := String([]byte(raw)); !ok || s != std {
			t.Errorf("String(%s) = %q, %v; want %q", raw, s, ok, std)
		}
	}
	if _, ok := String([]byte(`12`)); ok {
		t.Error("String(12) ok")
	}
}

func TestBuffer(t *testing.T) {
	obj := []byte(`{"a":1, "b":{"c":[2]}, "d":"x"}`)
	buf := NewBuffer(4) // too small: it grows
	cp := buf.Copy(obj[5:6])
	md := buf.Without(obj, Members(obj), `"type":"track"`, func(k []byte) bool { return string(k) == "b" })
	empty := buf.Without([]byte(`{}`), Members([]byte(`{}`)), "", func([]byte) bool { return false })
	if string(cp) != "1" || string(md) != `{"type":"track","a":1,"d":"x"}` || string(empty) != `{}` {
		t.Fatalf("Copy %s, Without %s, empty %s", cp, md, empty)
	}
	// Values are capped: appending to one does not overwrite the next.
	_ = append(cp, '9')
	if string(md) != `{"type":"track","a":1,"d":"x"}` {
		t.Errorf("appending to a copy changed the next value: %s", md)
	}
	// They share nothing with what was read.
	obj[5] = '7'
	if string(cp) != "1" {
		t.Errorf("a copy shares the object's bytes: %s", cp)
	}
}
