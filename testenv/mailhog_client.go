package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// mailHogPageSize is MailHog's own default page; it caps a page at 250.
const mailHogPageSize = 50

// mailHogMaxPage bounds how much of a reply is read, a 250-message page of
// large mails with room to spare.
const mailHogMaxPage = 256 << 20

// MailHogMessage is a message as MailHog's v2 API lists it.
type MailHogMessage struct {
	ID      string
	From    string   // envelope sender, mailbox@domain
	To      []string // envelope recipients
	Subject string   // the raw Subject header: MailHog does not decode it
	Headers map[string][]string
	Body    string
	Created time.Time
}

// FetchMailHogMessages returns every message held by the MailHog whose API is
// at apiURL (http://host:port), newest first as MailHog lists them, paging
// through /api/v2/messages. Each message appears once, even when mail
// arriving meanwhile shifts the pages; mail that arrives during the call may
// be missing.
func FetchMailHogMessages(ctx context.Context, apiURL string) ([]MailHogMessage, error) {
	var out []MailHogMessage
	seen := make(map[string]bool)
	for start := 0; ; {
		page, err := fetchMailHogPage(ctx, apiURL, start, mailHogPageSize)
		if err != nil {
			return nil, err
		}
		for _, item := range page.Items {
			if !seen[item.ID] {
				seen[item.ID] = true
				out = append(out, item.message())
			}
		}
		start += len(page.Items)
		// MailHog answers start == total with the oldest message again,
		// so stop on the total rather than on an empty page.
		if len(page.Items) == 0 || start >= page.Total {
			return out, nil
		}
	}
}

// mailHogPage is the v2 answer; field names are MailHog's JSON.
type mailHogPage struct {
	Total int           `json:"total"`
	Count int           `json:"count"`
	Start int           `json:"start"`
	Items []mailHogItem `json:"items"`
}

// mailHogItem is the part of MailHog's data.Message that we read.
type mailHogItem struct {
	ID      string
	From    *mailHogPath
	To      []*mailHogPath
	Content struct {
		Headers map[string][]string
		Body    string
	}
	Created time.Time
}

type mailHogPath struct {
	Mailbox string
	Domain  string
}

func (p *mailHogPath) String() string {
	if p == nil || (p.Mailbox == "" && p.Domain == "") {
		return ""
	}
	return p.Mailbox + "@" + p.Domain
}

func (it mailHogItem) message() MailHogMessage {
	m := MailHogMessage{
		ID:      it.ID,
		From:    it.From.String(),
		Subject: headerValue(it.Content.Headers, "Subject"),
		Headers: it.Content.Headers,
		Body:    it.Content.Body,
		Created: it.Created,
	}
	for _, to := range it.To {
		m.To = append(m.To, to.String())
	}
	return m
}

// headerValue is the first value of header name. MailHog keeps names as
// sent, so the exact spelling is tried first, then any case.
func headerValue(h map[string][]string, name string) string {
	if v := h[name]; len(v) > 0 {
		return v[0]
	}
	for k, v := range h {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

func fetchMailHogPage(ctx context.Context, apiURL string, start, limit int) (*mailHogPage, error) {
	u := fmt.Sprintf("%s/api/v2/messages?%s", strings.TrimSuffix(apiURL, "/"),
		url.Values{"start": {fmt.Sprint(start)}, "limit": {fmt.Sprint(limit)}}.Encode())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMailHogAPI, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMailHogAPI, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: GET %s: %s", ErrMailHogAPI, u, resp.Status)
	}
	var page mailHogPage
	if err := json.NewDecoder(io.LimitReader(resp.Body, mailHogMaxPage)).Decode(&page); err != nil {
		return nil, fmt.Errorf("%w: GET %s: %v", ErrMailHogAPI, u, err)
	}
	return &page, nil
}
