-- People who sign in to the review pages with a name and password (scripts keep using tokens). The
-- password is stored as scrypt(N, r, p, salt) — never the password — in the form written by
-- src/http/passwords.ts.
CREATE TABLE users (
  user_id        text PRIMARY KEY,
  role           text NOT NULL CHECK (role IN ('reviewer', 'operator', 'admin')),
  password_hash  text NOT NULL,
  disabled       boolean NOT NULL DEFAULT false,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now()
);
