package app

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/evp-dev/evp/internal/accounts"
	"github.com/evp-dev/evp/internal/accounts/pgaccounts"
	"github.com/evp-dev/evp/internal/config"
	"github.com/evp-dev/evp/internal/mail"
)

// newAccountService builds sign-in and sessions from the settings: the JWT secret
// (JWT_SECRET, or one generated and kept in the data directory outside production), SMTP
// delivery of codes or the dev-login log, and the allowed domains.
func newAccountService(cfg *config.Config, repo accounts.Repository, keys *accounts.KeyAuth, log *slog.Logger) (*accounts.Service, error) {
	secret := []byte(cfg.JWTSecret)
	switch {
	case len(secret) == 0:
		// config refuses an empty secret in production; several replicas outside production
		// each keep their own unless JWT_SECRET is set.
		s, err := accounts.LoadOrCreateSecret(cfg.DataDir)
		if err != nil {
			return nil, &config.Error{Setting: "JWT_SECRET", Value: "(empty)", Reason: "no secret given and none could be kept in the data directory: " + err.Error()}
		}
		secret = s
		if cfg.DatabaseURL != "" {
			log.Warn("JWT_SECRET is not set: sessions signed here are not valid on other replicas; set the same JWT_SECRET on every api process")
		}
	case len(secret) < accounts.MinSecretLen:
		// Refused in production by config; elsewhere stretched so a short dev secret works.
		log.Warn("JWT_SECRET is shorter than 32 bytes; production refuses it")
		sum := sha256.Sum256(secret)
		secret = sum[:]
	}
	tokens, err := accounts.NewTokens(secret, cfg.JWTExpiresIn)
	if err != nil {
		return nil, &config.Error{Setting: "JWT_SECRET", Value: "(hidden)", Reason: err.Error()}
	}
	sc := accounts.ServiceConfig{
		Repo: repo, Tokens: tokens, Keys: keys, DevLogin: cfg.DevLogin, AllowedDomains: cfg.AllowedDomains,
		CodeKey: derive(secret, "evp sign-in codes"), KeyPrefix: cfg.APIKeyPrefix, Log: log,
	}
	if cfg.SMTPHost != "" {
		m, err := mail.New(mail.Config{Host: cfg.SMTPHost, Port: cfg.SMTPPort, Username: cfg.SMTPUsername,
			Password: cfg.SMTPPassword, From: cfg.SMTPFrom})
		if err != nil {
			return nil, &config.Error{Setting: "SMTP_FROM", Value: cfg.SMTPFrom, Reason: err.Error()}
		}
		sc.Mailer = m
		log.Info("sign-in codes are sent by mail", "smtp", net.JoinHostPort(cfg.SMTPHost, strconv.Itoa(cfg.SMTPPort)))
	} else if cfg.DevLogin {
		log.Info("sign-in codes are written to this log (EVP_DEV_LOGIN; set SMTP_HOST to mail them)")
	} else {
		log.Warn("nobody can sign in: set SMTP_HOST and SMTP_FROM, or EVP_DEV_LOGIN=true")
	}
	return accounts.NewService(sc), nil
}

// derive makes a key for one purpose from the secret, so that no two uses share a key.
func derive(secret []byte, purpose string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

// displayAddr turns a listen address into one a browser can open.
func displayAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// OpenAccounts opens the account store: PostgreSQL when DATABASE_URL is set (migrated first
// when EVP_AUTO_MIGRATE is on), the embedded SQLite file otherwise.
func OpenAccounts(ctx context.Context, cfg *config.Config) (accounts.Repository, error) {
	if cfg.DatabaseURL == "" {
		acc, err := accounts.Open(ctx, cfg.DataDir)
		if err != nil {
			return nil, fmt.Errorf("open account store: %w", err)
		}
		return acc, nil
	}
	// The timeout also bounds waiting for another process's migration.
	octx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	pg, err := pgaccounts.Open(octx, cfg.DatabaseURL, cfg.AutoMigrate)
	if err != nil {
		return nil, fmt.Errorf("open PostgreSQL account store (DATABASE_URL): %w", err)
	}
	return pg, nil
}

// usageFlusher records API key usage every 30 s and deletes expired sign-in codes every
// hour (none when codes is nil) until ctx ends; then it records usage a last time.
type usageFlusher struct {
	keys  *accounts.KeyAuth
	codes *accounts.Service
	log   *slog.Logger
}

// Run implements service.
func (u usageFlusher) Run(ctx context.Context) error {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for tick := 1; ; tick++ {
		select {
		case <-t.C:
			u.flush(ctx)
			if u.codes != nil && tick%120 == 0 {
				if _, err := u.codes.CleanCodes(ctx); err != nil {
					u.log.Warn("old sign-in codes not deleted", "err", err)
				}
			}
		case <-ctx.Done():
			u.flush(context.Background())
			return nil
		}
	}
}

func (u usageFlusher) flush(ctx context.Context) {
	if err := u.keys.FlushUsage(ctx); err != nil {
		u.log.Warn("api key usage not recorded", "err", err)
	}
}
