// Shared helpers of the portal's end-to-end tests: the environment
// scripts/portal-e2e sets, the browser, the admin API, the CLI.
import { chromium } from 'playwright-core';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the tests with scripts/portal-e2e`);
  return v;
}

export const URL_ = need('KS_URL');
export const ADMIN = need('KS_ADMIN');
export const ROOT_SHA256 = need('KS_ROOT_SHA256');
export const BIN_DIR = need('KS_BIN_DIR');
export const WORK = need('KS_WORK');
export const SHOTS = need('KS_SCREENSHOTS');
const CHROMIUM = process.env.KS_CHROMIUM || '/usr/bin/chromium';

/** A browser with a fresh profile of its own (a separate person). */
export async function browser({ bypassCSP = false } = {}) {
  const dir = fs.mkdtempSync(path.join(WORK, 'profile-'));
  return chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    headless: true,
    bypassCSP,
    viewport: { width: 1280, height: 900 },
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
}

/** Fails the test on any dialog (alert, confirm) and any request that
 * leaves the server: every asset is the server's own. */
export function watch(page) {
  const seen = { dialogs: [], outside: [] };
  page.on('dialog', async (d) => { seen.dialogs.push(d.message()); await d.dismiss(); });
  page.on('request', (r) => { if (!r.url().startsWith(URL_)) seen.outside.push(r.url()); });
  return seen;
}

/** Signs in through the form. */
export async function signIn(page, token) {
  await page.goto(`${URL_}/ui/sign-in`);
  await page.fill('#sign-in-token', token);
  await Promise.all([page.waitForURL(`${URL_}/ui/`), page.click('button[type=submit]')]);
}

/** Posts a form from the page as a browser does (a form in the page,
 * submitted: the CSP forbids the page's scripts any fetch), with the
 * page's CSRF token unless `csrf` says otherwise; returns the status of
 * the POST's answer (303 for a change done). */
export async function formPost(page, action, fields, { csrf = 'page' } = {}) {
  const answer = page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === action);
  const navigated = page.waitForNavigation({ waitUntil: 'load' });
  await page.evaluate(({ action, fields, csrf }) => {
    const form = document.createElement('form');
    form.method = 'post';
    form.action = action;
    const all = { ...fields };
    if (csrf === 'page') all.csrf = document.querySelector('input[name=csrf]').value;
    else if (csrf !== null) all.csrf = csrf;
    for (const [name, value] of Object.entries(all)) {
      const input = document.createElement('input');
      input.type = 'hidden';
      input.name = name;
      input.value = value;
      form.appendChild(input);
    }
    document.body.appendChild(form);
    form.submit();
  }, { action, fields, csrf });
  const status = (await answer).status();
  await navigated;
  return status;
}

/** The admin API, as the init's org admin. */
export async function api(method, p, body, token = ADMIN) {
  const r = await fetch(URL_ + p, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** A fresh public key: { pem, tuf } (Ed25519 or ECDSA P-256). */
export function newKey(kind = 'ed25519') {
  const { publicKey } = kind === 'ed25519'
    ? crypto.generateKeyPairSync('ed25519')
    : crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = publicKey.export({ type: 'spki', format: 'pem' });
  let tuf = null;
  if (kind === 'ed25519') {
    const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x, 'base64url');
    tuf = { keytype: 'ed25519', scheme: 'ed25519', keyval: { public: raw.toString('hex') } };
  }
  return { pem, tuf };
}

const cliEnv = () => ({
  ...process.env,
  HOME: path.join(WORK, 'home'),
  KEYSHARE_CACHE_DIR: path.join(WORK, 'cache'),
});

/** Runs the keyshare CLI; returns { status, stdout, stderr }. */
export function keyshare(args) {
  const r = spawnSync(path.join(BIN_DIR, 'keyshare'), args, { env: cliEnv(), encoding: 'utf8' });
  if (r.error) throw r.error;
  return r;
}

export async function shot(page, name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `portal-${name}.png`), fullPage: true });
}
