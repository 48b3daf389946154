// Accessibility audit of the dashboard in the real browser with axe-core (the engine behind
// Lighthouse's and most tools' accessibility checks): WCAG 2.1 A and AA rules, colour contrast
// included, on the page as it is, in the light and the dark theme.
//
// audit(page, name) runs axe once per theme and records what it finds; findings() returns the
// violations that fail the test: every color-contrast violation (WCAG 1.4.3, "sufficient
// contrast"), and any other violation axe rates serious or critical. Moderate and minor ones,
// and contrast axe could not decide, are printed, not failed.
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
// Injected with page.evaluate (the DevTools protocol), which evp's Content-Security-Policy
// does not block, unlike a <script> tag.
const axeSource = await readFile(require.resolve('axe-core/axe.min.js'), 'utf8')

const TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']
const failing = []
const notes = []
let audits = 0

/** Runs axe over the page in both themes (the system preference, which the app follows by default). */
export async function audit(page, name, { themes = ['light', 'dark'] } = {}) {
  for (const theme of themes) {
    await page.emulateMedia({ colorScheme: theme })
    // Colours change through CSS transitions on buttons: let them finish before sampling.
    // A fixed pause was not enough on a busy machine (axe sampled a button halfway between
    // its light and dark colours), so wait until no transition runs, after the two frames
    // in which the new theme's styles apply and the transitions start.
    await page.evaluate(() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done))))
    await page.waitForFunction(
      () => !document.getAnimations().some((a) => a instanceof CSSTransition && a.playState === 'running'),
      null,
      { timeout: 10_000 },
    )
    const loaded = await page.evaluate(() => typeof window.axe !== 'undefined')
    if (!loaded) await page.evaluate(axeSource)
    const res = await page.evaluate(
      (tags) => window.axe.run(document, { runOnly: { type: 'tag', values: tags }, resultTypes: ['violations', 'incomplete'] }),
      TAGS,
    )
    audits++
    for (const v of res.violations) {
      const where = `${name} (${theme})`
      const nodes = v.nodes.map((n) => `    ${n.target.join(' ')}: ${(n.failureSummary || '').split('\n').slice(1).join(' ').trim()}`)
      const line = `${where}: ${v.id} [${v.impact}] ${v.help}\n${nodes.join('\n')}`
      if (v.id === 'color-contrast' || v.impact === 'serious' || v.impact === 'critical') failing.push(line)
      else notes.push(line)
    }
    // Contrast axe could not decide (text over an image or a gradient, say): listed, not failed.
    for (const v of res.incomplete.filter((i) => i.id === 'color-contrast')) {
      const nodes = v.nodes.map((n) => `    ${n.target.join(' ')}: ${(n.any[0]?.message || '').trim()}`)
      notes.push(`${name} (${theme}): color-contrast needs review (axe could not decide)\n${nodes.join('\n')}`)
    }
  }
  await page.emulateMedia({ colorScheme: 'light' })
}

/** The audits' results: how many ran, the violations that fail, and the others. */
export function findings() {
  return { audits, failing: [...failing], notes: [...notes] }
}
