package loadgen

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// FindListenerPID returns the process that has a TCP socket listening on port, found from
// /proc/net/tcp{,6} and the socket inodes in /proc/*/fd.
func FindListenerPID(port int) (int, error) {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		if err := listenInodes(f, port, inodes); err != nil && !errors.Is(err, os.ErrNotExist) {
			return 0, err
		}
	}
	if len(inodes) == 0 {
		return 0, fmt.Errorf("no process listens on TCP port %d", port)
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fdDir := filepath.Join("/proc", p.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue // gone, or not ours to look at
		}
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil || !strings.HasPrefix(link, "socket:[") {
				continue
			}
			if inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] {
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("port %d is listened on, but no visible process owns the socket (run as the server's user or pass --pid)", port)
}

// listenInodes adds the inodes of sockets in LISTEN state (0A) on port from one
// /proc/net/tcp file.
func listenInodes(file string, port int, into map[string]bool) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	want := fmt.Sprintf(":%04X", port)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Scan() // header
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 10 || f[3] != "0A" || !strings.HasSuffix(f[1], want) {
			continue
		}
		into[f[9]] = true
	}
	return sc.Err()
}

// ProcSample is one reading of a process's resource use.
type ProcSample struct {
	At       time.Time
	CPU      time.Duration // user + system time since the process started
	RSSBytes int64         // VmRSS
	HWMBytes int64         // VmHWM: peak RSS since the process started
}

// ReadProc reads /proc/<pid>/stat and /proc/<pid>/status.
func ReadProc(pid int) (ProcSample, error) {
	s := ProcSample{At: time.Now()}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// The command name (field 2) may hold spaces; the fields after it start past the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return s, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return s, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	s.CPU = time.Duration(ut+st) * time.Second / clockTicks
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		name, val, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			continue
		}
		if name == "VmRSS" {
			s.RSSBytes = kb << 10
		} else {
			s.HWMBytes = kb << 10
		}
	}
	return s, nil
}

// selfCPU returns this process's user + system time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procSampler reads a process every interval and keeps the first and latest readings and
// the largest RSS seen.
type procSampler struct {
	pid  int
	mu   sync.Mutex
	err  error
	from ProcSample
	last ProcSample
	prev ProcSample // the reading before last, for the live rate
	peak int64
	stop chan struct{}
	done chan struct{}
}

func startSampler(pid int, every time.Duration) (*procSampler, error) {
	first, err := ReadProc(pid)
	if err != nil {
		return nil, err
	}
	p := &procSampler{pid: pid, from: first, last: first, prev: first, peak: first.RSSBytes,
		stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.sample()
			}
		}
	}()
	return p, nil
}

func (p *procSampler) sample() {
	s, err := ReadProc(p.pid)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		if p.err == nil {
			p.err = err
		}
		return
	}
	p.prev, p.last = p.last, s
	p.peak = max(p.peak, s.RSSBytes)
}

// live returns the cores used between the last two readings and the current RSS.
func (p *procSampler) live() (cores float64, rss int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if dt := p.last.At.Sub(p.prev.At); dt > 0 {
		cores = float64(p.last.CPU-p.prev.CPU) / float64(dt)
	}
	return cores, p.last.RSSBytes
}

// finish takes a last reading, stops the sampler and returns the first and last readings,
// the largest RSS seen and the first error.
func (p *procSampler) finish() (from, last ProcSample, peak int64, err error) {
	close(p.stop)
	<-p.done
	p.sample()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.from, p.last, p.peak, p.err
}
