// Accessibility basics: axe-core's checks of labels, names, titles and
// structure on every page (injected with the CSP bypassed, in a browser
// of its own: the other tests keep the CSP), and forms used with the
// keyboard alone.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { URL_, ADMIN, browser, signIn, api, newKey } from './lib.mjs';

const require = createRequire(import.meta.url);
const AXE = require.resolve('axe-core/axe.min.js');
const RULES = [
  'label', 'select-name', 'button-name', 'link-name', 'input-button-name', 'document-title',
  'html-has-lang', 'duplicate-id', 'duplicate-id-aria', 'aria-valid-attr', 'aria-valid-attr-value',
  'list', 'listitem', 'th-has-data-cells', 'form-field-multiple-labels', 'frame-title', 'image-alt',
];
const PAGES = ['/ui/sign-in', '/ui/', '/ui/namespaces', '/ui/who-can-sign', '/ui/revocations', '/ui/ci',
  '/ui/peers', '/ui/tokens', '/ui/audit', '/ui/simulate'];

let ctx;

before(async () => {
  // A namespace with a key, so its page has tables and every form.
  await api('POST', '/api/v1/namespaces', { name: 'a11y', scopes: ['registry.example/a11y/**'] });
  await api('POST', '/api/v1/namespaces/a11y/keys', { public_key_pem: newKey().pem, id: 'a11y-key', description: 'for the checks' });
  ctx = await browser({ bypassCSP: true });
});

after(async () => {
  await ctx?.close();
});

async function axe(page) {
  await page.addScriptTag({ path: AXE });
  return page.evaluate(async (rules) => {
    const r = await window.axe.run(document, { runOnly: { type: 'rule', values: rules } });
    return r.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  }, RULES);
}

test('every form control has a label, and the pages pass axe-core\'s structure checks', async () => {
  const page = await ctx.newPage();
  await page.goto(`${URL_}/ui/sign-in`);
  assert.deepEqual(await axe(page), [], '/ui/sign-in');
  await signIn(page, ADMIN);
  const pages = [...PAGES.slice(1), '/ui/namespaces/a11y'];
  for (const p of pages) {
    await page.goto(URL_ + p);
    assert.deepEqual(await axe(page), [], p);
    // And directly: every visible control is labelled.
    const unlabelled = await page.evaluate(() => [...document.querySelectorAll('input, select, textarea')]
      .filter((e) => e.type !== 'hidden')
      .filter((e) => e.labels.length === 0 && !e.getAttribute('aria-label'))
      .map((e) => e.id || e.name));
    assert.deepEqual(unlabelled, [], p);
  }
});

test('sign-in and a form work with the keyboard alone', async () => {
  const k = await browser();
  try {
    const page = await k.newPage();
    await page.goto(`${URL_}/ui/sign-in`);
    // Tab from the top: the skip link first, then the token field.
    const tabTo = async (id, max = 40) => {
      for (let i = 0; i < max; i++) {
        await page.keyboard.press('Tab');
        if (await page.evaluate((id) => document.activeElement?.id === id, id)) return;
      }
      assert.fail(`Tab never reached #${id}`);
    };
    await tabTo('sign-in-token');
    await page.keyboard.type(ADMIN);
    await Promise.all([page.waitForURL(`${URL_}/ui/`), page.keyboard.press('Enter')]);
    // The simulator's form, filled and sent with the keyboard.
    await page.goto(`${URL_}/ui/simulate`);
    await tabTo('simulate-artifact');
    await page.keyboard.type('registry.example/nobody/app');
    await tabTo('simulate-key_id');
    await page.keyboard.type('some-key');
    await Promise.all([page.waitForLoadState('load'), page.keyboard.press('Enter')]);
    assert.match(await page.textContent('#decision-line'), /^registry\.example\/nobody\/app: untrusted: /);
    // The skip link is the first stop and leads to the content.
    await page.goto(`${URL_}/ui/`);
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('href')), '#main');
  } finally {
    await k.close();
  }
});
