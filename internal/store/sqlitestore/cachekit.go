package sqlitestore

import "sort"

// interner numbers strings (user ids), so that cached analytics hold 4 bytes per user and
// sum into dense arrays.
type interner struct {
	ids   map[string]int32
	names []string
}

func newInterner() interner { return interner{ids: map[string]int32{}} }

func (in *interner) id(s string) int32 {
	id, ok := in.ids[s]
	if !ok {
		id = int32(len(in.names))
		in.ids[s] = id
		in.names = append(in.names, s)
	}
	return id
}

// evictLRU deletes the least recently used entries of m while total (the size of all of
// them) is above limit, and returns the new total.
func evictLRU[K comparable, V any](m map[K]V, total, limit int, used func(V) uint64, size func(V) int) int {
	if total <= limit {
		return total
	}
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return used(m[keys[i]]) < used(m[keys[j]]) })
	for _, k := range keys {
		if total <= limit {
			break
		}
		total -= size(m[k])
		delete(m, k)
	}
	return total
}
