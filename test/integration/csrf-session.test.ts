import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { issueToken } from '../../src/http/auth';
import { harness, type Harness } from './helpers';

let h: Harness;
before(async () => {
  h = await harness({ worker: false, server: true });
});
after(() => h.close());

/** A cookie jar over fetch, as a browser keeps one per site. */
function browser(base: string) {
  const jar = new Map<string, string>();
  const remember = (res: Response): void => {
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const [k, v] = pair!.split('=');
      if (v === '' || /Max-Age=0|Expires=Thu, 01 Jan 1970/i.test(c)) jar.delete(k!); else jar.set(k!, v!);
    }
  };
  const cookie = (): string => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  return {
    jar,
    async get(path: string): Promise<{ res: Response; csrf: string }> {
      const res = await fetch(base + path, { headers: { cookie: cookie() }, redirect: 'manual' });
      remember(res);
      const text = await res.text();
      return { res, csrf: /name="_csrf" value="([^"]+)"/.exec(text)?.[1] ?? '' };
    },
    async post(path: string, form: Record<string, string>): Promise<Response> {
      const res = await fetch(base + path, { method: 'POST', headers: { cookie: cookie(), 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form).toString(), redirect: 'manual' });
      remember(res);
      return res;
    },
  };
}

test('CSRF tokens are bound to the signed-in user, and pages carry framing and sniffing protection', async () => {
  const base = h.server!.url;
  const token = issueToken(h.cfg.http.jwtSecret!, { user: 'alice', role: 'reviewer', ttlSeconds: 600 });
  const b = browser(base);
  const login = await b.get('/login');
  assert.match(login.res.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
  assert.equal(login.res.headers.get('x-frame-options'), 'DENY');
  assert.equal(login.res.headers.get('x-content-type-options'), 'nosniff');
  const anonymousToken = login.csrf;
  const signIn = await b.post('/login', { _csrf: anonymousToken, token, next: '/queue' });
  assert.equal(signIn.status, 303, `sign-in: ${await signIn.text()} cookies ${[...b.jar.keys()].join(',')}`);
  // The token from the anonymous page, replayed with alice's cookies: refused.
  assert.equal((await b.post('/logout', { _csrf: anonymousToken })).status, 403);
  // One generated for alice's session works.
  const queue = await b.get('/queue');
  assert.equal(queue.res.status, 200);
  assert.equal((await b.post('/logout', { _csrf: queue.csrf })).status, 303);
});

test('sign-in attempts are rate-limited per client: token guessing stops at 20 a minute', async () => {
  const b = browser(h.server!.url);
  const { csrf } = await b.get('/login');
  const statuses: number[] = [];
  for (let i = 0; i < 25; i++) statuses.push((await b.post('/login', { _csrf: csrf, token: `guess-${i}`, next: '/queue' })).status);
  // The window also counts the sign-in of the test above (same client address).
  const first = statuses.indexOf(429);
  assert.ok(first >= 18 && first <= 20, statuses.join(','));
  assert.deepEqual([...new Set(statuses.slice(0, first))], [401], 'wrong tokens are refused as such');
  assert.deepEqual([...new Set(statuses.slice(first))], [429]);
  const res = await b.post('/login', { _csrf: csrf, token: 'x', next: '/queue' });
  assert.match(await res.text(), /too many requests: at most 20 per 1 minute; retry in \d+ s/);
});
