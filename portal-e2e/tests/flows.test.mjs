// An admin's flow, a maintainer kept to their namespace, markup rendered
// inert, CSRF refusals; a screenshot of each view.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { URL_, ADMIN, browser, watch, signIn, formPost, api, newKey, shot } from './lib.mjs';

let admin; // the admin's browser
let page;
let seen;
let maintainerSecret;
const keyA = newKey('ed25519');
const XSS = '<script>alert("xss")</script><img src=x onerror="window.__xss=1">';

before(async () => {
  admin = await browser();
  page = await admin.newPage();
  seen = watch(page);
});

after(async () => {
  await admin?.close();
});

test('an admin signs in, creates a namespace, a maintainer token, adds a key, revokes it, reads the audit log', async () => {
  await signIn(page, ADMIN);
  // The session is a cookie the page's scripts cannot read.
  assert.equal(await page.evaluate(() => document.cookie), '');
  const cookies = await admin.cookies();
  const session = cookies.find((c) => c.name === 'ks_portal');
  assert.ok(session, 'a session cookie');
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Strict');
  assert.equal(session.path, '/ui/');
  assert.ok(!cookies.some((c) => c.value.includes(ADMIN)));

  // Create namespaces team-a and team-b.
  for (const ns of ['team-a', 'team-b']) {
    await page.goto(`${URL_}/ui/namespaces`);
    await page.fill('#create-namespace-name', ns);
    await page.fill('#create-namespace-scopes', `registry.example/${ns}/**`);
    await Promise.all([page.waitForURL(`${URL_}/ui/namespaces/${ns}?done=namespace-created`), page.click('form[action="/ui/namespaces"] button[type=submit]')]);
    assert.match(await page.textContent('main'), /Namespace created/);
  }
  // A refused create shows the error next to its field.
  await page.goto(`${URL_}/ui/namespaces`);
  await page.fill('#create-namespace-name', 'Not A Name');
  await page.fill('#create-namespace-scopes', 'registry.example/x/**');
  await page.click('form[action="/ui/namespaces"] button[type=submit]');
  assert.ok(await page.isVisible('#create-namespace-name-error'), 'the error is at the name field');
  assert.equal(await page.getAttribute('#create-namespace-name', 'aria-invalid'), 'true');

  // A maintainer token for team-a: its secret shown once.
  await page.goto(`${URL_}/ui/tokens`);
  await page.selectOption('#create-token-kind', 'maintainer');
  await page.fill('#create-token-namespace', 'team-a');
  await page.fill('#create-token-description', 'team a maintainer');
  await page.click('form[action="/ui/tokens"] button[type=submit]');
  maintainerSecret = await page.inputValue('#new-secret');
  assert.match(maintainerSecret, /^ks_[0-9a-f]+$/);
  await page.goto(`${URL_}/ui/tokens`);
  assert.ok(!(await page.content()).includes(maintainerSecret), 'the secret is shown once');
  assert.ok(!page.url().includes('ks_'), 'no token in a URL');
  assert.equal(await page.evaluate(() => localStorage.length + sessionStorage.length), 0, 'nothing in web storage');

  // A key in team-b (the maintainer must never see it).
  await api('POST', '/api/v1/namespaces/team-b/keys', { public_key_pem: newKey('p256').pem, id: 'b-secret-key', description: 'only-for-team-b' });

  // Add a key to team-a, described with markup.
  await page.goto(`${URL_}/ui/namespaces/team-a`);
  await page.fill('#add-key-public_key_pem', keyA.pem);
  await page.fill('#add-key-id', 'laptop-1');
  await page.fill('#add-key-description', XSS);
  await Promise.all([page.waitForURL(/done=key-added/), page.click(`form[action="/ui/namespaces/team-a/keys"] button[type=submit]`)]);
  // Revoke it, with a reason.
  await page.fill('#revoke-key-key_id', 'laptop-1');
  await page.fill('#revoke-key-reason', 'laptop stolen');
  await Promise.all([page.waitForURL(/done=key-revoked/), page.click(`form[action="/ui/namespaces/team-a/revocations"] button[type=submit]`)]);
  const row = page.locator('tr', { hasText: 'laptop-1' }).first();
  assert.match(await row.textContent(), /revoked/);
  assert.match(await row.textContent(), /laptop stolen/);

  // The audit log has every change, and the chain verifies.
  await page.goto(`${URL_}/ui/audit`);
  const audit = await page.textContent('main');
  for (const action of ['namespace.create', 'token.create', 'key.add', 'namespace_revocation.add']) {
    assert.ok(audit.includes(action), `audit shows ${action}`);
  }
  assert.match(audit, /The audit chain verifies/);
  assert.deepEqual(seen.outside, [], 'no request leaves the server');
});

test('a key description with markup renders inert', async () => {
  await page.goto(`${URL_}/ui/namespaces/team-a`);
  assert.equal(await page.evaluate(() => window.__xss), undefined, 'no handler ran');
  assert.deepEqual(seen.dialogs, [], 'no dialog opened');
  const cell = page.locator('td', { hasText: '<script>alert("xss")</script>' });
  assert.equal(await cell.count(), 1, 'the description is shown as text');
  assert.equal(await page.locator('main script').count(), 0);
  assert.equal(await page.locator('main img').count(), 0);
});

test('changes without the CSRF token, with a wrong one, or from another site are refused', async () => {
  await page.goto(`${URL_}/ui/namespaces`);
  const before = (await api('GET', '/api/v1/namespaces')).namespaces.length;
  const fields = { name: 'forged', scopes: 'registry.example/forged/**' };
  assert.equal(await formPost(page, '/ui/namespaces', fields, { csrf: null }), 403);
  await page.goto(`${URL_}/ui/namespaces`);
  assert.equal(await formPost(page, '/ui/namespaces', fields, { csrf: '0'.repeat(64) }), 403);
  await page.goto(`${URL_}/ui/namespaces`);
  // Another site posting with the session's cookie and even a good token.
  const csrf = await page.inputValue('input[name=csrf]');
  const r = await admin.request.post(`${URL_}/ui/namespaces`, {
    headers: { Origin: 'https://evil.example', 'Sec-Fetch-Site': 'cross-site' },
    form: { ...fields, csrf },
    maxRedirects: 0,
  });
  assert.equal(r.status(), 403);
  assert.equal((await api('GET', '/api/v1/namespaces')).namespaces.length, before, 'nothing was created');
});

test('a maintainer sees and reaches only their namespace, and no org action', async () => {
  const m = await browser();
  try {
    const p = await m.newPage();
    const mseen = watch(p);
    await signIn(p, maintainerSecret);
    for (const view of ['/ui/', '/ui/namespaces', '/ui/who-can-sign', '/ui/simulate', '/ui/namespaces/team-a']) {
      const r = await p.goto(URL_ + view);
      assert.equal(r.status(), 200, view);
      const html = await p.content();
      for (const leak of ['team-b', 'b-secret-key', 'only-for-team-b']) {
        assert.ok(!html.includes(leak), `${view} shows ${leak}`);
      }
      for (const org of ['/ui/tokens', '/ui/audit', '/ui/peers']) {
        assert.equal(await p.locator(`a[href="${org}"]`).count(), 0, `${view} links ${org}`);
      }
    }
    assert.equal((await p.goto(`${URL_}/ui/namespaces/team-b`)).status(), 404);
    assert.ok(!(await p.content()).includes('b-secret-key'));
    for (const org of ['/ui/tokens', '/ui/audit', '/ui/revocations', '/ui/peers', '/ui/ci']) {
      assert.equal((await p.goto(URL_ + org)).status(), 403, org);
    }
    // The POST routes, with the session's own CSRF token.
    await p.goto(`${URL_}/ui/namespaces/team-a`);
    const beforeB = await api('GET', '/api/v1/namespaces/team-b');
    const beforeNs = (await api('GET', '/api/v1/namespaces')).namespaces.length;
    const tokens = (await api('GET', '/api/v1/tokens')).tokens;
    const beforeTokens = tokens.length;
    const posts = [
      ['/ui/namespaces/team-b/keys', { public_key_pem: newKey().pem, id: 'evil' }, 404],
      ['/ui/namespaces/team-b/keys/remove', { key_id: 'b-secret-key' }, 404],
      ['/ui/namespaces/team-b/revocations', { key_id: 'b-secret-key', reason: 'evil' }, 404],
      ['/ui/namespaces', { name: 'evil', scopes: 'registry.example/evil/**' }, 403],
      ['/ui/tokens', { kind: 'org-admin' }, 403],
      ['/ui/tokens/revoke', { id: tokens[0].id }, 403],
      ['/ui/revocations', { spki_sha256: 'ab'.repeat(32), reason: 'evil' }, 403],
    ];
    for (const [action, fields, status] of posts) {
      await p.goto(`${URL_}/ui/namespaces/team-a`);
      assert.equal(await formPost(p, action, fields), status, action);
      assert.ok(!(await p.content()).includes('b-secret-key'), action);
    }
    assert.equal((await api('GET', '/api/v1/tokens')).tokens.find((t) => t.id === tokens[0].id).state, 'active');
    assert.deepEqual(await api('GET', '/api/v1/namespaces/team-b'), beforeB, 'team-b unchanged');
    assert.equal((await api('GET', '/api/v1/namespaces')).namespaces.length, beforeNs);
    assert.equal((await api('GET', '/api/v1/tokens')).tokens.length, beforeTokens);
    assert.deepEqual(mseen.dialogs, []);
    // Their own namespace they can change.
    await p.goto(`${URL_}/ui/namespaces/team-a`);
    await p.fill('#add-key-public_key_pem', newKey('p256').pem);
    await p.fill('#add-key-id', 'maintainer-key');
    await Promise.all([p.waitForURL(/done=key-added/), p.click(`form[action="/ui/namespaces/team-a/keys"] button[type=submit]`)]);
    // Sign-out ends the session.
    await Promise.all([p.waitForURL(`${URL_}/ui/sign-in`), p.click('form[action="/ui/sign-out"] button')]);
    await p.goto(`${URL_}/ui/namespaces/team-a`);
    assert.equal(new URL(p.url()).pathname, '/ui/sign-in');
  } finally {
    await m.close();
  }
});

test('a screenshot of each view', async () => {
  // A peer, so its views have something to show.
  await api('PUT', '/api/v1/peers/partner', {
    patterns: ['registry.partner.example/**'], url: 'https://keyshare.partner.example',
    root: { sha256: 'ab'.repeat(32) },
  });
  const views = [
    ['overview', '/ui/'], ['namespaces', '/ui/namespaces'], ['namespace', '/ui/namespaces/team-a'],
    ['who-can-sign', '/ui/who-can-sign'], ['revocations', '/ui/revocations'], ['ci', '/ui/ci'],
    ['peers', '/ui/peers'], ['tokens', '/ui/tokens'], ['audit', '/ui/audit'],
  ];
  for (const [name, view] of views) {
    const r = await page.goto(URL_ + view);
    assert.equal(r.status(), 200, view);
    const size = (await r.body()).length;
    assert.ok(size < 200 * 1024, `${view}: ${size} bytes`);
    await shot(page, name);
  }
  // The simulator with a decision.
  await page.goto(`${URL_}/ui/simulate`);
  await page.fill('#simulate-artifact', 'registry.example/team-a/app');
  await page.fill('#simulate-key_id', 'maintainer-key');
  await Promise.all([page.waitForLoadState('load'), page.click('form[action="/ui/simulate"] button[type=submit]')]);
  assert.match(await page.textContent('#decision-line'), /^registry\.example\/team-a\/app: trusted by namespace `team-a`/);
  await shot(page, 'simulate');
  const anon = await browser();
  try {
    const p = await anon.newPage();
    await p.goto(`${URL_}/ui/sign-in`);
    await shot(p, 'sign-in');
  } finally {
    await anon.close();
  }
});
