package dashboard

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/casekeeper/core/pkg/auth"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// pageNames are the templates under templates/, each rendered inside layout.html.
var pageNames = []string{"error", "signed_out", "endpoints", "endpoint_form", "endpoint", "delivery", "cases", "case", "credentials"}

type pages struct{ byName map[string]*template.Template }

func loadPages() (*pages, error) {
	funcs := template.FuncMap{
		"time":  formatTime,
		"since": func(t time.Time) string { return formatAgo(t, time.Now()) },
		"join":  strings.Join,
		"errfor": func(errs map[string]string, field string) string {
			return errs[field]
		},
		"fieldError": func(id, msg string) fieldErrorView { return fieldErrorView{ID: id, Msg: msg} },
		"list":       func(s ...string) []string { return s },
		"pagelink":   pageLink,
	}
	p := &pages{byName: map[string]*template.Template{}}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("dashboard template %s: %w", name, err)
		}
		p.byName[name] = t
	}
	return p, nil
}

type fieldErrorView struct{ ID, Msg string }

// layoutData is what layout.html needs besides the page's own data.
type layoutData struct {
	Title       string
	Nav         string
	SignedIn    bool
	User        string
	Tenant      string
	CSRF        string
	CanWebhooks bool
	CanCases    bool
	Flash       *flash
	Page        any
}

// render writes a whole page. It renders into a buffer first, so that a template error becomes a clean 500 rather
// than half a page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, s *session, code int, name, title string, page any) {
	d := layoutData{Title: title, Nav: navOf(name), Page: page}
	if s != nil {
		d.SignedIn = true
		d.User = s.user
		d.Tenant = s.principal.Tenant
		d.CSRF = s.csrf
		d.CanWebhooks = s.principal.Has(auth.RoleWebhooksManage)
		d.CanCases = s.principal.Has(auth.RoleCasesRead)
		if r.Method == http.MethodGet {
			d.Flash = s.takeFlash()
		}
	}
	var buf bytes.Buffer
	if err := h.pages.byName[name].ExecuteTemplate(&buf, "layout.html", d); err != nil {
		h.log.ErrorContext(r.Context(), "dashboard template failed", "page", name, "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

func navOf(page string) string {
	switch page {
	case "endpoints", "endpoint_form", "endpoint", "delivery":
		return "webhooks"
	case "cases", "case":
		return "cases"
	case "credentials":
		return "credentials"
	}
	return ""
}

func (h *Handler) renderError(w http.ResponseWriter, r *http.Request, s *session, e errorPage) {
	code := e.Status
	if code < 400 || code > 599 {
		code = http.StatusInternalServerError
	}
	h.render(w, r, s, code, "error", e.Title, e)
}

// renderForbidden explains which role is missing instead of showing a blank or generic page.
func (h *Handler) renderForbidden(w http.ResponseWriter, r *http.Request, s *session, role string) {
	what := map[string]string{
		auth.RoleWebhooksManage: "manage the Webhook Settings",
		auth.RoleCasesRead:      "see your organisation's cases",
	}[role]
	h.render(w, r, s, http.StatusForbidden, "error", "You need the "+role+" role", errorPage{
		Status: http.StatusForbidden,
		Title:  "You need the " + role + " role",
		Message: fmt.Sprintf("You are signed in as %s, but your account does not have the %s role, which is needed to %s. "+
			"Ask an administrator of your organisation to grant it in Keycloak.", s.user, role, what),
		Role: role,
	})
}

// backendError renders the page for a failed backing call, logging what the user does not see.
func (h *Handler) backendError(w http.ResponseWriter, r *request, err error) {
	e := pageFor(err)
	if e.Status >= 500 {
		h.log.ErrorContext(r.Context(), "dashboard backend call failed", "path", r.URL.Path, "error", err)
	}
	h.renderError(w, r.Request, r.sess, e)
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func formatAgo(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "in " + roundDuration(-d)
	case d < 5*time.Second:
		return "just now"
	}
	return roundDuration(d) + " ago"
}

func roundDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func formatLatency(d time.Duration) string {
	switch {
	case d <= 0:
		return "—"
	case d < 10*time.Millisecond:
		// Loopback and LAN receivers answer in well under a millisecond; "0 ms" would read as "not measured".
		return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

// staticHandler serves the embedded CSS and JavaScript. They change only with the binary, so browsers may keep
// them for an hour.
func staticHandler() http.Handler {
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err) // the embed pattern above guarantees the directory
	}
	files := http.StripPrefix("/dashboard/static/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	})
}
