// The decision simulator answers as `keyshare decide` (the CLI, refreshed
// from the same server) does: 24 cases (4 of them X.509 certificate
// chains), compared line for line.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { URL_, ADMIN, ROOT_SHA256, WORK, browser, signIn, api, newKey, keyshare } from './lib.mjs';

let ctx;
let page;
const keys = {};

// A certificate (PEM) for CN=`cn`, P-256, made by the openssl CLI:
// self-signed CA when `issuer` is null, else issued by `issuer`.
function certificate(cn, issuer) {
  const base = path.join(WORK, `sim-cert-${cn.replace(/\W/g, '-')}-${Math.random().toString(16).slice(2)}`);
  const openssl = (args) => execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${base}.key`]);
  if (issuer === null) {
    openssl(['req', '-x509', '-new', '-key', `${base}.key`, '-subj', `/CN=${cn}`, '-days', '30',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
      '-out', `${base}.pem`]);
  } else {
    openssl(['req', '-new', '-key', `${base}.key`, '-subj', `/CN=${cn}`, '-out', `${base}.csr`]);
    openssl(['x509', '-req', '-in', `${base}.csr`, '-CA', `${issuer.base}.pem`, '-CAkey', `${issuer.base}.key`,
      '-set_serial', '7', '-days', '30', '-out', `${base}.pem`]);
  }
  return { base, pem: fs.readFileSync(`${base}.pem`, 'utf8') };
}

function keyFile(name, text) {
  const file = path.join(WORK, `sim-${name}`);
  fs.writeFileSync(file, text);
  return file;
}

before(async () => {
  // The trust state: namespaces, keys in and out of their windows,
  // revoked by a namespace and by the organization, a threshold of 2.
  for (const ns of ['sim-a', 'sim-b', 'sim-t', 'sim-empty']) {
    await api('POST', '/api/v1/namespaces', { name: ns, scopes: [`registry.example/${ns}/**`] });
  }
  for (const [name, kind] of [['good-ed', 'ed25519'], ['good-p256', 'p256'], ['ns-revoked', 'ed25519'],
    ['org-revoked', 'p256'], ['expired', 'ed25519'], ['future', 'ed25519'], ['b-key', 'p256'],
    ['t1', 'ed25519'], ['t2', 'ed25519'], ['unknown', 'ed25519']]) {
    keys[name] = newKey(kind);
  }
  const add = (ns, id, extra = {}) => api('POST', `/api/v1/namespaces/${ns}/keys`, { public_key_pem: keys[id].pem, id, ...extra });
  await add('sim-a', 'good-ed');
  await add('sim-a', 'good-p256');
  await add('sim-a', 'ns-revoked');
  await add('sim-a', 'org-revoked');
  await add('sim-a', 'expired', { not_before: '2019-01-01T00:00:00Z', not_after: '2020-01-01T00:00:00Z' });
  await add('sim-a', 'future', { not_before: '2099-01-01T00:00:00Z' });
  await add('sim-b', 'b-key');
  await add('sim-t', 't1');
  await add('sim-t', 't2');
  await api('PUT', '/api/v1/namespaces/sim-t/threshold', { threshold: 2 });
  await api('POST', '/api/v1/namespaces/sim-a/revocations', { key_id: 'ns-revoked', reason: 'left the team' });
  await api('POST', '/api/v1/revocations', { public_key_pem: keys['org-revoked'].pem, reason: 'key leaked' });
  // X.509: an identity of sim-a (its CA, subject CN=builder), and chains
  // (leaf first) from it, with another subject, and from another CA.
  const ca = certificate('Sim A CA', null);
  const otherCa = certificate('Other CA', null);
  await api('POST', '/api/v1/namespaces/sim-a/identities', { name: 'builders', ca_certs: [ca.pem], subject: 'CN=builder' });
  keys['cert-good'] = { pem: certificate('builder', ca).pem + ca.pem, cert: true };
  keys['cert-subject'] = { pem: certificate('intruder', ca).pem + ca.pem, cert: true };
  keys['cert-foreign'] = { pem: certificate('builder', otherCa).pem + otherCa.pem, cert: true };

  // The CLI, pinned to the same server's root.
  fs.mkdirSync(path.join(WORK, 'home'), { recursive: true });
  let r = keyshare(['init', '--server', URL_, '--root-sha256', ROOT_SHA256]);
  assert.equal(r.status, 0, r.stderr);
  r = keyshare(['refresh']);
  assert.equal(r.status, 0, r.stderr);

  ctx = await browser();
  page = await ctx.newPage();
  await signIn(page, ADMIN);
});

after(async () => {
  await ctx?.close();
});

// [name, artifact, signer key (or null), key id (or null), signed_at (or null), TUF key object?]
const CASES = [
  ['trusted Ed25519 key', 'registry.example/sim-a/app', 'good-ed', null, null],
  ['trusted P-256 key, deeper name', 'registry.example/sim-a/deep/x/y', 'good-p256', null, null],
  ['wrong namespace', 'registry.example/sim-b/app', 'good-ed', null, null],
  ['unknown key', 'registry.example/sim-a/app', 'unknown', null, null],
  ['revoked by the namespace', 'registry.example/sim-a/app', 'ns-revoked', null, null],
  ['revoked by the organization', 'registry.example/sim-a/app', 'org-revoked', null, null],
  ['expired window', 'registry.example/sim-a/app', 'expired', null, null],
  ['expired window, signed inside it', 'registry.example/sim-a/app', 'expired', null, '2019-06-01T00:00:00Z'],
  ['not yet valid', 'registry.example/sim-a/app', 'future', null, null],
  ['no namespace owns the name', 'other.example/app', 'good-ed', null, null],
  ['the other namespace\'s own key', 'registry.example/sim-b/app', 'b-key', null, null],
  ['threshold 2, one key', 'registry.example/sim-t/app', 't1', null, null],
  ['threshold 2, two keys', 'registry.example/sim-t/app', 't1', 't2', null],
  ['by key id', 'registry.example/sim-a/app', null, 'good-ed', null],
  ['by an unknown key id', 'registry.example/sim-a/app', null, 'nope', null],
  ['a namespace with no key', 'registry.example/sim-empty/app', 'good-ed', null, null],
  ['as a TUF key object', 'registry.example/sim-a/app', 'good-ed', null, null, true],
  ['org-revoked key elsewhere', 'registry.example/sim-b/app', 'org-revoked', null, null],
  ['signed in the past', 'registry.example/sim-a/app', 'good-p256', null, '2021-03-04T05:06:07Z'],
  ['revoked key of one namespace, by id', 'registry.example/sim-a/app', null, 'ns-revoked', null],
  ['X.509 chain of the identity', 'registry.example/sim-a/app', 'cert-good', null, null],
  ['X.509 chain, another subject', 'registry.example/sim-a/app', 'cert-subject', null, null],
  ['X.509 chain from another CA', 'registry.example/sim-a/app', 'cert-foreign', null, null],
  ['X.509 chain of the identity, other namespace', 'registry.example/sim-b/app', 'cert-good', null, null],
];

test('the simulator gives the decision `keyshare decide` gives, in 24 cases', async () => {
  assert.equal(CASES.length, 24);
  const outcomes = new Set();
  // A signing time both sides are given (messages name it): now, to the
  // second, after every change above.
  await new Promise((resolve) => setTimeout(resolve, 1100));
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  for (const [name, artifact, key, keyId, when, tuf] of CASES) {
    const signedAt = when ?? now;
    const args = ['decide', artifact];
    let signerText = '';
    if (key) {
      signerText = tuf ? JSON.stringify(keys[key].tuf) : keys[key].pem;
      args.push(keys[key].cert ? '--cert' : '--key', keyFile(`${key}${tuf ? '.json' : '.pem'}`, signerText));
    }
    if (keyId) args.push('--key-id', keyId);
    if (signedAt) args.push('--signed-at', signedAt);
    const cli = keyshare(args);
    assert.ok(cli.status === 0 || cli.status === 1, `${name}: keyshare decide failed: ${cli.stderr}`);
    const expected = cli.stdout.trim();

    await page.goto(`${URL_}/ui/simulate`);
    await page.fill('#simulate-artifact', artifact);
    await page.fill('#simulate-signer', signerText);
    await page.fill('#simulate-key_id', keyId ?? '');
    await page.fill('#simulate-signed_at', signedAt ?? '');
    await Promise.all([page.waitForLoadState('load'), page.click('form[action="/ui/simulate"] button[type=submit]')]);
    const line = await page.textContent('#decision-line');
    assert.equal(line.trim(), expected, name);
    assert.equal(cli.status === 0, (await page.getAttribute('#decision-line', 'class')) === 'trusted', name);
    outcomes.add(expected.replace(/^[^:]*: /, '').split(':')[0]);
  }
  // The cases reach several outcomes, not one.
  assert.ok(outcomes.size >= 4, [...outcomes].join(' | '));
});
