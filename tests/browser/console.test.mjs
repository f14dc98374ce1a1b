// The console in a real headless Chromium (Debian's /usr/bin/chromium driven by playwright-core), against
// running services seeded by tests/e2e/tests/console.rs, which runs this script and passes:
//   CONSOLE_URL, CONSOLE_TOKEN, SCREENSHOTS (a directory), BO_ORDER (a backordered order of BO_SKU),
//   BO_SKU, BO_OTHER_SKU (another backordered SKU), BO_DEAD_LETTER_ID (the message id of a parked message),
//   BO_REPRIORITISE (an order behind BO_ORDER in BO_SKU's queue, to move to the front),
//   BO_AGE_CLASSES (the aging colours the worklist's rows must show, e.g. age-b,age-d).
// Exits 0 when every check holds; otherwise prints what failed, saves failed-<step>.png and exits 1.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (name) => {
  const value = process.env[name];
  if (!value) {
    console.error(`console.test: ${name} is not set (tests/e2e/tests/console.rs sets it)`);
    process.exit(2);
  }
  return value;
};
const URL_ = env('CONSOLE_URL').replace(/\/$/, '');
const TOKEN = env('CONSOLE_TOKEN');
const SHOTS = env('SCREENSHOTS');
const ORDER = env('BO_ORDER');
const SKU = env('BO_SKU');
const OTHER_SKU = env('BO_OTHER_SKU');
const DEAD_LETTER_ID = env('BO_DEAD_LETTER_ID');
const REPRIORITISE = env('BO_REPRIORITISE');
const AGE_CLASSES = env('BO_AGE_CLASSES').split(',');
const OPERATOR = 'Ada Browser';
mkdirSync(SHOTS, { recursive: true });

// The flags that keep Chromium from reaching out to anything (../shared/FACTS.md); Playwright adds
// --headless and a new empty profile directory of its own.
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, deviceScaleFactor: 1 });
const page = await context.newPage();
page.setDefaultTimeout(15000);

// Every request the pages make must go to the console itself: nothing is fetched from anywhere else.
const foreign = [];
page.on('request', (request) => {
  const url = request.url();
  if (!url.startsWith(URL_) && !url.startsWith('data:') && !url.startsWith('about:')) foreign.push(url);
});
const pageErrors = [];
page.on('pageerror', (error) => pageErrors.push(String(error)));

let step = 'start';
const passed = [];
function check(condition, message) {
  if (!condition) throw new Error(`${step}: ${message}`);
}
async function go(path, expectStatus = 200) {
  const response = await page.goto(URL_ + path);
  check(response, `no response for ${path}`);
  check(response.status() === expectStatus, `${path} answered ${response.status()}, expected ${expectStatus}: ${
    (await page.locator('main').innerText().catch(() => '')).slice(0, 400)}`);
  return response;
}
async function shot(name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}
/// Submits the form the locator is in and waits for the page it leads to.
async function submit(button) {
  const [response] = await Promise.all([page.waitForNavigation(), button.click()]);
  return response;
}
const rowsOf = (sku) => page.locator(`table.worklist tbody tr[data-sku="${sku}"]`);

try {
  // 1. The worklist shows the backordered order, coloured by age, among the others.
  step = 'worklist';
  await go('/');
  const orderRow = page.locator(`table.worklist tbody tr[data-order="${ORDER}"]`);
  check(await orderRow.count() >= 1, `${ORDER} is not in the worklist`);
  check(await rowsOf(OTHER_SKU).count() >= 1, `no row of ${OTHER_SKU} before filtering`);
  check(/age-[a-e]/.test(await orderRow.first().getAttribute('class')), 'the row has no aging colour');
  const classes = await page.locator('table.worklist tbody tr').evaluateAll((rows) => rows.map((r) => r.className));
  for (const age of AGE_CLASSES) check(classes.includes(age), `no row coloured ${age}: ${classes.join(', ')}`);
  const allRows = await page.locator('table.worklist tbody tr').count();
  await shot('worklist');
  passed.push(`worklist: ${allRows} rows, ${ORDER} among them`);

  // 2. The SKU filter narrows it to that SKU's rows.
  step = 'filter';
  await page.fill('form.filters input[name="sku"]', SKU);
  await submit(page.locator('form.filters button[type="submit"]'));
  check(new URL(page.url()).searchParams.get('sku') === SKU, `the filter is not in the address: ${page.url()}`);
  const skus = await page.locator('table.worklist tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.sku));
  check(skus.length >= 1, 'the filtered list is empty');
  check(skus.every((s) => s === SKU), `rows of other SKUs remain: ${skus.join(', ')}`);
  check(skus.length < allRows, `the filter did not narrow the list (${skus.length} of ${allRows})`);
  await shot('filtered');
  passed.push(`filter: ${skus.length} rows, all ${SKU}`);

  // Sorting by a column keeps the filter and marks the column.
  await submit(page.locator('table.worklist th a', { hasText: 'Waiting' }));
  check(new URL(page.url()).searchParams.get('sku') === SKU, 'sorting lost the filter');
  check(await page.locator('th[aria-sort] a', { hasText: 'Waiting' }).count() === 1, 'the sorted column is not marked');

  // 3. The order page: its lines, ETAs and timeline.
  step = 'order';
  await submit(page.locator(`table.worklist tbody tr[data-order="${ORDER}"] a`, { hasText: ORDER }).first());
  check((await page.locator('h1').innerText()).includes(ORDER), 'the order page has another heading');
  check(await page.locator('main table.grid tbody tr').count() >= 1, 'the order shows no lines');
  check((await page.locator('main table.grid').first().innerText()).includes(SKU), `the lines do not name ${SKU}`);
  check(await page.locator('ol.timeline li').count() >= 1, 'the timeline is empty');
  check(await page.locator('form[action$="/priority"]').count() === 1, 'no re-prioritise form');
  await shot('order');
  passed.push('order page: lines, timeline, re-prioritise form');

  // 4. The what-if on the SKU page shows the fill, and changes nothing.
  step = 'sku-preview';
  await go(`/skus/${encodeURIComponent(SKU)}`);
  const queueBefore = await page.locator('main section table.grid tbody tr').first().innerText();
  await page.fill('#what-if input[name="preview"]', '3');
  await submit(page.locator('#what-if button[type="submit"]'));
  check(new URL(page.url()).searchParams.get('preview') === '3', `the preview is not in the address: ${page.url()}`);
  const preview = page.locator('section#preview');
  check(await preview.count() === 1, `no preview shown: ${(await page.locator('main').innerText()).slice(0, 400)}`);
  const fills = await preview.locator('table.fills tbody tr').allInnerTexts();
  check(fills.length >= 1, 'the preview fills nothing');
  check(fills.some((f) => f.includes('+')), `the fills show no units: ${fills.join(' | ')}`);
  const filled = await preview.locator('[data-filled]').getAttribute('data-filled');
  check(filled === '3', `the preview filled ${filled} units, expected 3`);
  await shot('sku-preview');
  // Nothing changed: the queue reads the same without the preview.
  await go(`/skus/${encodeURIComponent(SKU)}`);
  check(await page.locator('main section table.grid tbody tr').first().innerText() === queueBefore,
    'the queue changed after a preview');
  passed.push(`preview: 3 units fill ${fills.length} line(s): ${fills[0].replace(/\s+/g, ' ')}`);

  // 5. The KPI page draws its charts as SVG.
  step = 'kpis';
  await go('/kpis');
  const charts = await page.locator('svg.chart').count();
  check(charts >= 4, `only ${charts} SVG charts`);
  check(await page.locator('svg.chart g.bar rect').count() >= 1, 'no chart has a bar (aging has open lines)');
  check(await page.locator('svg.chart circle').count() >= 1, 'the fill-rate chart has no point (orders were placed today)');
  check(await page.locator('table.compliance tbody tr').count() >= 1, 'no customer in the OTIF table');
  await shot('kpis');
  passed.push(`kpis: ${charts} SVG charts`);

  // 6. A dead letter is replayed with the token: button, success message, the replay listed.
  step = 'deadletters';
  await go('/deadletters');
  const letter = page.locator('table.deadletters tbody tr', { hasText: DEAD_LETTER_ID }).first();
  check(await letter.count() === 1, `the dead letter ${DEAD_LETTER_ID} is not listed`);
  const sequence = await letter.getAttribute('data-sequence');
  await letter.locator('summary').click();
  await letter.locator('input[name="reason"]').fill('checked by the browser test');
  await letter.locator('input[name="operator"]').fill(OPERATOR);
  if (await letter.locator('input[name="token"]').count() > 0) {
    await letter.locator('input[name="token"]').fill(TOKEN);
  }
  await submit(letter.locator('button[type="submit"]'));
  const notice = page.locator('.notice.good');
  check(await notice.count() === 1, `no success message: ${(await page.locator('main').innerText()).slice(0, 400)}`);
  check((await notice.innerText()).includes(`#${sequence}`), `the message names another letter: ${await notice.innerText()}`);
  const replayed = page.locator(`table.deadletters tbody tr[data-sequence="${sequence}"] .replay`);
  check(await replayed.count() >= 1, 'the replay is not listed beside the letter');
  check((await replayed.first().innerText()).includes(OPERATOR), 'the replay does not name the operator');
  await shot('deadletters');
  passed.push(`dead letter #${sequence} replayed by ${OPERATOR}`);

  // The token is remembered now: the form no longer asks for it.
  await page.locator(`table.deadletters tbody tr[data-sequence="${sequence}"] summary`).click();
  check(await page.locator(`table.deadletters tbody tr[data-sequence="${sequence}"] input[name="token"]`).count() === 0,
    'the token is asked for again after a successful action');

  // 7. Re-prioritising an order moves it to the front of its queue; the browser remembers who and the token.
  step = 'reprioritise';
  await go(`/orders/${encodeURIComponent(REPRIORITISE)}`);
  const form = page.locator('form[action$="/priority"]');
  check(await form.locator('input[name="operator"]').inputValue() === OPERATOR, 'the operator is not remembered');
  check(await form.locator('input[name="token"]').count() === 0, 'the remembered token is asked for');
  await form.locator('input[name="priority"]').fill('50');
  await form.locator('input[name="reason"]').fill('retailer contract');
  await submit(form.locator('button[type="submit"]'));
  const done = page.locator('.notice.good, .notice.info');
  check(await done.count() >= 1, `no confirmation: ${(await page.locator('main').innerText()).slice(0, 400)}`);
  check((await page.locator('aside .card').first().innerText()).includes('50') || (await done.first().innerText()).includes('on its way'),
    'the new priority is not shown');
  await shot('reprioritised');
  await go(`/skus/${encodeURIComponent(SKU)}`);
  const first = await page.locator('main section table.grid tbody tr').first().innerText();
  check(first.includes(REPRIORITISE), `${REPRIORITISE} is not first in the queue after re-prioritising: ${first}`);
  passed.push(`${REPRIORITISE} re-prioritised to 50 and first in ${SKU}'s queue`);

  step = 'no foreign requests';
  check(foreign.length === 0, `requests left the console: ${foreign.join(', ')}`);
  check(pageErrors.length === 0, `script errors: ${pageErrors.join('; ')}`);

  for (const p of passed) console.log(`ok - ${p}`);
  console.log(`console browser test: ${passed.length} passed, 0 failed; screenshots in ${SHOTS}`);
  await browser.close();
} catch (error) {
  for (const p of passed) console.log(`ok - ${p}`);
  console.error(`not ok - ${error.message}`);
  await page.screenshot({ path: join(SHOTS, `failed-${step}.png`), fullPage: true }).catch(() => {});
  console.error(`page: ${page.url()} (screenshot failed-${step}.png)`);
  await browser.close();
  process.exit(1);
}
