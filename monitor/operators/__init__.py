"""The operators' side at run time: audited writes (with permissions and idempotency), machine tokens held in
memory, partners' pushes written in groups, staff sign-in and sessions, all gathered on one `Desk`."""
