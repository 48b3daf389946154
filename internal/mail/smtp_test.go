package mail

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// A real SMTP server (emersion/go-smtp) on a loopback port receives what SMTP sends.

type received struct {
	from string
	to   []string
	data string
}

type backend struct {
	mu   sync.Mutex
	msgs []received
}

func (b *backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{b: b}, nil }

type session struct {
	b   *backend
	cur received
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error { s.cur.from = from; return nil }
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.cur.to = append(s.cur.to, to)
	return nil
}
func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.data = string(b)
	s.b.mu.Lock()
	s.b.msgs = append(s.b.msgs, s.cur)
	s.b.mu.Unlock()
	return nil
}
func (s *session) Reset()        { s.cur = received{} }
func (s *session) Logout() error { return nil }

func startServer(t *testing.T, be *backend) int {
	t.Helper()
	srv := smtp.NewServer(be)
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

func TestSendCodeDelivers(t *testing.T) {
	be := &backend{}
	port := startServer(t, be)
	s, err := New(Config{Host: "127.0.0.1", Port: port, From: "evp <evp@example.com>"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.SendCode(ctx, "ann@example.com", "042917", 5*time.Minute); err != nil {
		t.Fatalf("SendCode: %v", err)
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	if len(be.msgs) != 1 {
		t.Fatalf("server received %d messages, want 1", len(be.msgs))
	}
	m := be.msgs[0]
	if m.from != "evp@example.com" || len(m.to) != 1 || m.to[0] != "ann@example.com" {
		t.Errorf("envelope from %q to %v", m.from, m.to)
	}
	for _, want := range []string{"Subject: Your evp sign-in code: 042917", "Your evp sign-in code is 042917", "valid for 5 minutes"} {
		if !strings.Contains(m.data, want) {
			t.Errorf("message lacks %q:\n%s", want, m.data)
		}
	}
}

func TestSendFailsClearly(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens there now
	s, err := New(Config{Host: "127.0.0.1", Port: port, From: "evp@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	err = s.SendCode(context.Background(), "ann@example.com", "123456", 5*time.Minute)
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Fatalf("SendCode to a closed port = %v; want an error naming the server", err)
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Config{Host: "smtp.example.com", Port: 587}); err == nil {
		t.Error("New without From succeeded")
	}
	if _, err := New(Config{Host: "smtp.example.com", Port: 587, From: "not an address"}); err == nil {
		t.Error("New with a malformed From succeeded")
	}
}
