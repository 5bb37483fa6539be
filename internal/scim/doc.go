// Package scim speaks the SCIM 2.0 protocol (RFC 7643 and RFC 7644) for the
// Users and Groups of one tenant, so that an identity provider such as Okta
// or Microsoft Entra ID can provision, update and deprovision attest
// accounts. [Serve] answers one request under [Prefix]; the caller has
// already authenticated it and settled its tenant, and passes a [Backend]
// bound to that tenant.
//
// The package keeps no state. It decodes and checks what the client sends,
// turns it into [User] and [Group] values, and leaves storage, uniqueness
// and the effects of deactivation to the Backend. PATCH is applied here: the
// resource is read, the operations are applied to a copy, and the copy is
// written back whole with ReplaceUser or ReplaceGroup.
//
// Decoding is strict where that costs an identity provider nothing and
// tolerant where real providers differ from the RFC:
//
//   - A body is at most 1 MiB of UTF-8 JSON with no duplicate names. An
//     attribute that is neither in the core schema nor the enterprise
//     extension is refused with 400 invalidSyntax. Core attributes attest does
//     not keep (title, phoneNumbers, addresses and so on) and every
//     enterprise extension attribute are accepted and dropped, because
//     identity providers send them by default. Read-only attributes (id,
//     meta, groups) in a POST or PUT are ignored, as RFC 7643 asks.
//   - Attribute names and PATCH op names are matched without regard to case,
//     and booleans may arrive as the strings "true" and "false" in any case.
//   - A password is refused with 400 invalidValue wherever it appears.
//     attest accounts set their own password, with MFA, at enrolment; an
//     identity provider that believes it has set one should be told it has
//     not, rather than have the value silently dropped.
//
// List requests take a filter of the form `attr eq "value"` on userName,
// externalId, displayName or emails.value for Users and on displayName or
// externalId for Groups; startIndex counts from 1, count defaults to
// [DefaultCount] and is capped at [MaxCount].
//
// Error responses carry the SCIM error schema, name the attribute at fault
// and never repeat a value the client sent.
package scim
