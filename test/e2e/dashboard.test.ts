/**
 * The dashboard end to end: a real `fleetcast serve` (PGlite, simulator transport) and Debian's
 * Chromium driven by playwright-core. One user signs in, links a simulated device through the QR
 * flow, imports a CSV through the page, creates and starts a campaign to those leads and watches it
 * complete on its detail page without reloading; a second user then sees none of it. Every page is
 * saved as a screenshot under test-results/screenshots/, the page must log no console error, and
 * the first load must finish within a second.
 *
 * Chromium missing is a failure (CI installs it, see .ci/run), not a skip: only FLEETCAST_E2E=0
 * skips this file.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { deployment, freePort, killAll, startFleetcast, type Deployment, type Fleetcast } from '../helpers/process.js';

const CHROMIUM = '/usr/bin/chromium';
const SHOTS = join(process.cwd(), 'test-results', 'screenshots');
const ADMIN = { email: 'admin@fleetcast.local', password: 'e2e-admin-password-1' };
const OTHER = { email: 'other@fleetcast.local', password: 'e2e-other-password-1' };

const skip = process.env.FLEETCAST_E2E === '0' ? 'FLEETCAST_E2E=0' : false;

after(() => killAll());

/** Errors the page logged or threw, per context: the run must end with none. */
function watchConsole(page: Page, into: string[]): void {
  page.on('console', (m) => {
    if (m.type() === 'error') into.push(`${page.url()}: console.error: ${m.text()}`);
  });
  page.on('pageerror', (e) => into.push(`${page.url()}: uncaught: ${e.message}`));
}

/** Form controls on screen without a label (a <label>, aria-label or aria-labelledby). */
const UNLABELLED = `[...document.querySelectorAll('input, select, textarea')]
  .filter((el) => el.type !== 'hidden' && el.labels.length === 0 && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby'))
  .map((el) => el.outerHTML.slice(0, 120))`;

/** Saves the page, after checking that every control on it has a label. */
async function shot(page: Page, name: string): Promise<void> {
  assert.deepEqual(await page.evaluate<string[]>(UNLABELLED), [], `${name}: controls without a label`);
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

async function signIn(page: Page, base: string, who: { email: string; password: string }): Promise<void> {
  await page.goto(`${base}/`);
  await page.getByLabel('Email').fill(who.email);
  await page.getByLabel('Password').fill(who.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { level: 1, name: /^Good / }).waitFor();
}

async function nav(page: Page, label: string): Promise<void> {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: label, exact: true }).click();
}

/** A write through the page's own cookie session, with the CSRF token it was given. */
async function post(page: Page, base: string, path: string, data: unknown): Promise<unknown> {
  const me = (await (await page.request.get(`${base}/api/v1/me`)).json()) as { csrf_token: string };
  const res = await page.request.post(`${base}/api/v1${path}`, { data, headers: { 'x-csrf-token': me.csrf_token } });
  assert.ok(res.ok(), `POST ${path}: ${res.status()} ${await res.text()}`);
  return res.json();
}

test('the dashboard, end to end in Chromium', { skip, timeout: 120_000 }, async (t) => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: install Debian's chromium (apt-get install chromium; .ci/run does) or set FLEETCAST_E2E=0 to skip this test`);
  mkdirSync(SHOTS, { recursive: true });
  const started = Date.now();
  const d: Deployment = await deployment('pglite');
  let server: Fleetcast | undefined;
  let browser: Browser | undefined;
  const errors: string[] = [];
  try {
    server = startFleetcast(['serve'], {
      ...d.env,
      HOST: '127.0.0.1',
      PORT: String(await freePort()),
      FLEETCAST_LOG_LEVEL: 'warn',
      FLEETCAST_ADMIN_EMAIL: ADMIN.email,
      FLEETCAST_ADMIN_PASSWORD: ADMIN.password,
      FLEETCAST_LIVE_FIGURES_MS: '500',
      FLEETCAST_LEASE_TTL_MS: '3000',
    });
    const base = (await server.ready(60_000)).replace(/\/$/, '');
    // The server has served the app before (as it has by the time anybody visits it): its first
    // answers include compiling its own request paths, which is no part of the page's load.
    const html = await (await fetch(`${base}/`, { headers: { accept: 'text/html' } })).text();
    for (const m of html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)) await (await fetch(`${base}${m[1]}`)).arrayBuffer();
    // launch() gives the browser a fresh, temporary user-data directory of its own.
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const ctx: BrowserContext = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
    const page = await ctx.newPage();
    page.setDefaultTimeout(15_000);
    watchConsole(page, errors);

    // First load: navigation start to the load event, cold browser, on localhost.
    await page.goto(`${base}/`, { waitUntil: 'load' });
    // Evaluated in the page (a string: this file is compiled without the DOM's types).
    const loadMs = await page.evaluate<number>('(() => { const n = performance.getEntriesByType("navigation")[0]; return n.loadEventEnd - n.startTime; })()');
    assert.ok(loadMs > 0 && loadMs < 1000, `first load took ${loadMs} ms`);
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await shot(page, '01-sign-in');

    await signIn(page, base, ADMIN);
    await page.getByTestId('today').waitFor();
    // Landmarks, and the keyboard's first stop skips to the content.
    for (const role of ['banner', 'navigation', 'main'] as const) assert.equal(await page.getByRole(role).count(), 1, role);
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate<string>('document.activeElement.textContent'), 'Skip to content');
    await shot(page, '02-home');

    // Link a simulated device through the QR flow: the QR appears, the "phone" scans it.
    await nav(page, 'Devices');
    await page.getByRole('button', { name: 'Add device' }).click();
    await page.getByLabel('Device name').fill('Sales 1');
    await page.getByRole('button', { name: 'Add and link' }).click();
    const qr = page.getByTestId('link-qr');
    await qr.locator('svg').waitFor();
    await shot(page, '03-device-qr');
    const devices = (await (await page.request.get(`${base}/api/v1/devices`)).json()) as { data: { id: number; name: string }[] };
    const device = devices.data.find((x) => x.name === 'Sales 1');
    assert.ok(device, JSON.stringify(devices));
    await post(page, base, `/devices/${device.id}/link/simulate-scan`, { phone: '+60123000001' });
    await page.getByText(/^Linked/).waitFor();
    await page.keyboard.press('Escape');
    await page.getByRole('dialog').waitFor({ state: 'hidden' });
    const card = page.getByRole('listitem', { name: 'Sales 1' });
    // The engine takes the new device on at its next lease round (FLEETCAST_LEASE_TTL_MS / 3).
    await card.getByText('online', { exact: true }).waitFor({ timeout: 20_000 }).catch(async (err: unknown) => {
      throw new Error(`${(err as Error).message}\nthe API says: ${await (await page.request.get(`${base}/api/v1/devices/${device.id}`)).text()}`);
    });
    // Short gaps, so the campaign finishes within the test.
    await card.getByRole('button', { name: 'Edit limits' }).click();
    await page.getByLabel('Shortest gap (s)').fill('0');
    await page.getByLabel('Longest gap (s)').fill('0.2');
    await page.getByRole('button', { name: 'Save' }).click();
    await card.getByText('0 ms – 200 ms').waitFor();
    await shot(page, '04-devices');

    // Import a CSV through the page: five good rows and one the importer refuses.
    await nav(page, 'Leads');
    await page.getByRole('button', { name: 'Import CSV' }).click();
    const csv = ['name,phone,status', 'Alice,+60123000101,prospect', 'Bala,+60123000102,prospect', 'Chen,+60123000103,customer', 'Devi,+60123000104,prospect', 'Eli,+60123000105,prospect', 'Broken,not-a-phone,prospect', ''].join('\n');
    await page.getByLabel('CSV file').setInputFiles({ name: 'leads.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) });
    await page.getByLabel('Give the leads to').selectOption({ label: 'Sales 1' });
    await page.getByLabel('Add niches').fill('e2e');
    await page.getByRole('button', { name: 'Import', exact: true }).click();
    const progress = page.getByTestId('import-progress');
    await progress.getByText(/100% · 6 rows: 5 added, 0 updated, 0 skipped, 1 refused/).waitFor();
    const download = page.waitForEvent('download');
    await progress.getByRole('button', { name: 'Download the error report' }).click();
    assert.match((await download).suggestedFilename(), /^import-\d+-errors\.csv$/);
    await shot(page, '05-lead-import');
    await page.getByRole('button', { name: 'Close' }).click();
    await page.getByRole('cell', { name: '+60123000105' }).waitFor();
    assert.equal(await page.locator('tbody tr').count(), 5);
    await page.getByRole('button', { name: 'Alice' }).click();
    await page.getByRole('dialog').getByLabel('Status').fill('customer');
    await page.getByRole('button', { name: 'Save lead' }).click();
    await page.getByText('Lead saved.').waitFor();
    await page.getByRole('row', { name: /Alice/ }).getByText('customer').waitFor();
    // The filters narrow the table: two customers now.
    await page.getByRole('search').getByLabel('Status').fill('customer');
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.getByRole('row', { name: /Bala/ }).waitFor({ state: 'detached' });
    assert.equal(await page.locator('tbody tr').count(), 2);
    await shot(page, '06-leads');

    // Create and start a campaign to those leads, with the live preview and audience size.
    await nav(page, 'Campaigns');
    await page.getByRole('link', { name: 'New campaign' }).click();
    await page.getByLabel('Campaign name').fill('December launch');
    await page.getByLabel('Message', { exact: true }).fill('{Hi|Hello} {name}, our *December* offer is here');
    await page.getByLabel('Niches').fill('e2e');
    await page.getByTestId('audience-size').getByText('5', { exact: true }).waitFor();
    await page.locator('.wa-bubble strong', { hasText: 'December' }).waitFor();
    await page.locator('.wa-bubble', { hasText: /(Hi|Hello) (Alice|Bala|Chen|Devi|Eli), our/ }).waitFor();
    await shot(page, '07-campaign-editor');
    await page.getByRole('button', { name: 'Save and start' }).click();
    await page.getByRole('heading', { level: 1, name: /December launch/ }).waitFor();
    const url = page.url();
    const campaignId = Number(/\/campaigns\/(\d+)$/.exec(url)?.[1]);
    assert.ok(campaignId > 0, url);

    // Watch it complete live: the page is not reloaded, the figures move by themselves.
    const progressCard = page.getByTestId('campaign-progress');
    await page.locator('h1 .badge', { hasText: 'completed' }).waitFor({ timeout: 45_000 });
    assert.equal(page.url(), url);
    const sent = progressCard.locator('.stat', { hasText: 'Sent' }).locator('.stat-value');
    assert.equal(await sent.textContent(), '5');
    assert.equal(await progressCard.locator('.stat', { hasText: 'Done' }).locator('.stat-value').textContent(), '100%');
    await shot(page, '08-campaign-detail');

    await nav(page, 'Campaigns');
    await page.getByRole('link', { name: 'December launch' }).waitFor();
    await shot(page, '09-campaigns');
    await page.getByRole('button', { name: 'Calendar' }).click();
    await page.locator('.calendar').getByRole('link', { name: 'December launch' }).waitFor();
    await shot(page, '10-campaign-calendar');

    await nav(page, 'Home');
    await page.getByTestId('today').locator('.stat', { hasText: 'Sent' }).getByText('5', { exact: true }).waitFor();
    await shot(page, '11-home-after');

    // A sequence with one step, made through its editor.
    await nav(page, 'Sequences');
    await page.getByRole('heading', { level: 1, name: 'Sequences' }).waitFor();
    await page.getByRole('button', { name: 'New sequence' }).click();
    await page.getByLabel('Name', { exact: true }).fill('Welcome drip');
    await page.getByLabel('Trigger', { exact: true }).fill('welcome');
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: /Welcome drip/ }).waitFor();
    await page.getByRole('button', { name: 'Add step' }).click();
    await page.getByLabel('Hours').fill('2');
    await page.getByLabel('Then send at').fill('10:00');
    await page.getByLabel('Message', { exact: true }).fill('Welcome, {name}!');
    await page.getByRole('button', { name: 'Save step' }).click();
    await page.getByText('Step 1: wait 1 d 2 h, then at 10:00').waitFor();
    await page.getByRole('button', { name: 'Enroll leads' }).click();
    await page.getByRole('dialog').getByLabel('Niches').fill('e2e');
    await page.getByRole('button', { name: 'Enroll', exact: true }).click();
    await page.getByText('5 enrolled of 5 matching leads').waitFor();
    await page.getByRole('button', { name: 'Close' }).click();
    await page.locator('.stat', { hasText: 'Enrolled' }).getByText('5', { exact: true }).waitFor();
    await shot(page, '12-sequence');
    await nav(page, 'Sequences');
    await page.getByRole('link', { name: 'Welcome drip' }).first().waitFor();
    await shot(page, '12-sequences');
    await nav(page, 'Monitoring');
    await page.getByRole('heading', { level: 1, name: 'Monitoring' }).waitFor();
    await shot(page, '13-monitoring');
    await nav(page, 'Settings');
    await page.getByRole('heading', { level: 1, name: 'Settings' }).waitFor();
    await page.getByLabel('New token name').fill('CRM sync');
    await page.getByRole('button', { name: 'Create token' }).click();
    await page.getByText('Your new token, shown only now').waitFor();
    await page.getByRole('cell', { name: 'CRM sync' }).waitFor();
    await shot(page, '14-settings');

    // At phone width the pages still fit: nothing wider than the screen.
    await page.setViewportSize({ width: 375, height: 800 });
    for (const [path, name] of [['/', '15-home-375'], ['/leads', '16-leads-375'], [`/campaigns/${campaignId}`, '17-campaign-375']] as const) {
      await page.goto(`${base}${path}`);
      await page.locator('main h1').first().waitFor();
      const width = await page.evaluate<number>('document.documentElement.scrollWidth');
      assert.ok(width <= 375, `${path} is ${width} px wide at 375 px`);
      await shot(page, name);
    }
    await page.setViewportSize({ width: 1280, height: 900 });

    // A second user, in a browser of their own, sees none of it.
    await post(page, base, '/users', { email: OTHER.email, password: OTHER.password, name: 'Other' });
    const otherCtx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page2 = await otherCtx.newPage();
    page2.setDefaultTimeout(15_000);
    watchConsole(page2, errors);
    await signIn(page2, base, OTHER);
    await page2.getByTestId('today').locator('.stat', { hasText: 'Sent' }).getByText('0', { exact: true }).waitFor();
    await page2.getByText('Nothing running.').waitFor();
    await nav(page2, 'Devices');
    await page2.getByText('No devices yet.').waitFor();
    await nav(page2, 'Leads');
    await page2.getByText('No leads match.').waitFor();
    await nav(page2, 'Campaigns');
    await page2.getByText('No campaign yet.').waitFor();
    await shot(page2, '18-other-user');
    for (const path of [`/campaigns/${campaignId}`, `/campaigns/${campaignId}/stats`, `/devices/${device.id}`]) {
      const res = await page2.request.get(`${base}/api/v1${path}`);
      assert.equal(res.status(), 404, `${path} answers the other user ${res.status()}`);
    }
    await otherCtx.close();

    assert.deepEqual(errors, []);
    await ctx.close();
    // About 35 s on an idle 2-core machine; the test's timeout bounds it on a loaded one.
    t.diagnostic(`first load ${Math.round(loadMs)} ms, whole run ${Date.now() - started} ms`);
  } catch (err) {
    // What the browser showed when it failed, next to the other screenshots.
    for (const c of browser?.contexts() ?? []) for (const [i, p] of c.pages().entries()) await p.screenshot({ path: join(SHOTS, `failure-${i}.png`), fullPage: true }).catch(() => undefined);
    if (errors.length > 0) console.error(errors.join('\n'));
    throw err;
  } finally {
    await browser?.close().catch(() => undefined);
    if (server) await server.stop('SIGTERM');
    await d.dispose();
  }
});
