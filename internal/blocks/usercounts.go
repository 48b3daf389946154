package blocks

// denseUsersUpTo is the largest user dictionary whose counts a query keeps in an array (8
// bytes an id, whether the range holds the user or not); past it, in a map of the users the
// range holds, so that a dictionary of tens of millions of ids does not make every query
// allocate hundreds of megabytes.
var denseUsersUpTo = 1 << 20

// userCounts are a query's events per global user id.
type userCounts struct {
	dense  []int64
	sparse map[uint32]int64
	n      int // the dictionary's size: ids below it are valid
}

func newUserCounts(n int) userCounts {
	if n <= denseUsersUpTo {
		return userCounts{dense: make([]int64, n), n: n}
	}
	return userCounts{sparse: map[uint32]int64{}, n: n}
}

func (c *userCounts) add(id uint32, n int64) {
	if c.dense != nil {
		c.dense[id] += n
		return
	}
	if n != 0 {
		c.sparse[id] += n
	}
}

func (c *userCounts) get(id uint32) int64 {
	if c.dense != nil {
		return c.dense[id]
	}
	return c.sparse[id]
}

// each calls fn with every user that has events, in no particular order.
func (c *userCounts) each(fn func(id uint32, n int64)) {
	if c.dense == nil {
		for id, n := range c.sparse {
			fn(id, n)
		}
		return
	}
	for id, n := range c.dense {
		if n > 0 {
			fn(uint32(id), n)
		}
	}
}
