// Package mail delivers evp's sign-in codes over SMTP.
//
// It uses github.com/wneessen/go-mail: maintained, with STARTTLS policies, SMTP AUTH
// mechanism discovery and context support that net/smtp lacks.
package mail

import (
	"context"
	"fmt"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// Config says how to reach the SMTP server.
type Config struct {
	Host     string
	Port     int
	Username string // no authentication when empty
	Password string
	From     string // "evp <evp@example.com>" or a bare address
	// RequireTLS refuses servers that do not offer STARTTLS; otherwise it is used when
	// offered.
	RequireTLS bool
}

// SMTP sends mail through one SMTP server, one connection per message (codes are rare).
type SMTP struct {
	cfg  Config
	opts []gomail.Option
}

// New checks cfg and returns a sender.
func New(cfg Config) (*SMTP, error) {
	if cfg.Host == "" || cfg.From == "" {
		return nil, fmt.Errorf("mail: SMTP_HOST and SMTP_FROM are required")
	}
	if err := gomail.NewMsg().From(cfg.From); err != nil {
		return nil, fmt.Errorf("mail: SMTP_FROM %q: %w", cfg.From, err)
	}
	policy := gomail.TLSOpportunistic
	if cfg.RequireTLS {
		policy = gomail.TLSMandatory
	}
	opts := []gomail.Option{gomail.WithPort(cfg.Port), gomail.WithTLSPolicy(policy), gomail.WithTimeout(20 * time.Second)}
	if cfg.Username != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(cfg.Username), gomail.WithPassword(cfg.Password))
	}
	return &SMTP{cfg: cfg, opts: opts}, nil
}

// Send delivers a plain-text message.
func (s *SMTP) Send(ctx context.Context, to, subject, body string) error {
	m := gomail.NewMsg()
	if err := m.From(s.cfg.From); err != nil {
		return fmt.Errorf("mail: from: %w", err)
	}
	if err := m.To(to); err != nil {
		return fmt.Errorf("mail: to %q: %w", to, err)
	}
	m.Subject(subject)
	m.SetBodyString(gomail.TypeTextPlain, body)
	c, err := gomail.NewClient(s.cfg.Host, s.opts...)
	if err != nil {
		return fmt.Errorf("mail: %w", err)
	}
	if err := c.DialAndSendWithContext(ctx, m); err != nil {
		return fmt.Errorf("mail: send to %s via %s:%d: %w", to, s.cfg.Host, s.cfg.Port, err)
	}
	return nil
}

// SendCode delivers a sign-in code (accounts.Mailer).
func (s *SMTP) SendCode(ctx context.Context, to, code string, validFor time.Duration) error {
	body := fmt.Sprintf("Your evp sign-in code is %s\n\nIt is valid for %d minutes and can be used once.\n"+
		"If you did not ask to sign in, ignore this message.\n", code, int(validFor.Minutes()))
	return s.Send(ctx, to, "Your evp sign-in code: "+code, body)
}
