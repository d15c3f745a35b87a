package mta

import "github.com/emersion/go-smtp"

// 8-bit mail (RFC 6152). go-smtp always advertises 8BITMIME, so a client may send octets over
// 127 in the body; a next hop that does not advertise 8BITMIME must not get them (RFC 6152
// section 3). This gateway does not downgrade to 7 bits (quoted-printable) as Postfix can:
// it bounces such a message for that hop's recipients, saying why.
//
// SMTPUTF8 (RFC 6531) is not offered: go-smtp answers its MAIL parameter with 504 5.5.4, and
// non-ASCII addresses are refused at MAIL and RCPT (553 5.1.7, 553 5.1.3), so no message that
// needs it is ever accepted or relayed.

// has8bit reports whether the message holds an octet over 127. A client that sends 8-bit data
// without BODY=8BITMIME breaks RFC 6152, but the data is 8-bit all the same.
func has8bit(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

// eightBitRefused fails the recipients of a hop without 8BITMIME for good: waiting will not
// make the hop accept 8-bit data. RFC 3463 5.6.3: conversion required but not supported.
func eightBitRefused(hop string, idx []int) []rcptResult {
	return allResults(hop, idx, false, 0, smtp.EnhancedCode{5, 6, 3},
		"message has 8-bit content, but the next hop does not offer 8BITMIME and it is not converted")
}

// mailOptions are the MAIL parameters for q at a hop, and whether the hop can take q at all.
func mailOptions(c *smtp.Client, q *queued) (*smtp.MailOptions, bool) {
	opts := &smtp.MailOptions{Size: q.n}
	if !q.env.EightBit {
		return opts, true
	}
	if ok, _ := c.Extension("8BITMIME"); !ok {
		return nil, false
	}
	opts.Body = smtp.Body8BitMIME
	return opts, true
}
