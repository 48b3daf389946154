// Accessibility audit of the dashboard in the real browser with axe-core (the engine behind
// Lighthouse's and most tools' accessibility checks): WCAG 2.1 A and AA rules, colour contrast
// included, on the page as it is, in the light and the dark theme.
//
// audit(page, name) runs axe once per theme and records what it finds; findings() returns the
// violations that fail the test: every color-contrast violation (WCAG 1.4.3, "sufficient
// contrast"), and any other violation axe rates serious or critical. Moderate and minor ones,
// and contrast axe could not decide, are printed, not failed.
//
// axe leaves disabled controls out of its contrast rule (WCAG exempts them), yet a disabled
// button must still be readable: audit also measures the text of every visible disabled
// button against its background, its opacity included, and fails below 4.5:1.
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
let disabledChecked = 0
const DISABLED_MIN_CONTRAST = 4.5

/**
 * disabledButtonContrast runs in the page: the contrast of each visible disabled button's
 * text with its background, as painted (background colours with their alpha over what is
 * behind them, then the button's opacity over its backdrop).
 */
function disabledButtonContrast() {
  const canvas = document.createElement('canvas')
  canvas.width = canvas.height = 1
  const ctx = canvas.getContext('2d', { willReadFrequently: true })
  // Any CSS colour (rgb, oklab, color-mix results...) as [r, g, b, alpha 0-1], by painting it.
  const rgba = (css) => {
    ctx.clearRect(0, 0, 1, 1)
    ctx.fillStyle = css
    ctx.fillRect(0, 0, 1, 1)
    const [r, g, b, a] = ctx.getImageData(0, 0, 1, 1).data
    return [r, g, b, a / 255]
  }
  const over = (top, below, alpha = top[3]) => [0, 1, 2].map((i) => alpha * top[i] + (1 - alpha) * below[i])
  // What is painted behind el: the backgrounds of its ancestors, down from the first opaque one.
  const behind = (el) => {
    const layers = []
    for (let e = el; e; e = e.parentElement) {
      const c = rgba(getComputedStyle(e).backgroundColor)
      if (c[3] > 0) layers.push(c)
      if (c[3] >= 1) break
    }
    return layers.reduceRight((col, layer) => over(layer, col), [255, 255, 255])
  }
  const luminance = (c) => {
    const [r, g, b] = c.map((v) => {
      v /= 255
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4
    })
    return 0.2126 * r + 0.7152 * g + 0.0722 * b
  }
  const contrast = (a, b) => {
    const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x)
    return (hi + 0.05) / (lo + 0.05)
  }
  return [...document.querySelectorAll('button:disabled')]
    .filter((b) => b.checkVisibility() && b.textContent.trim())
    .map((b) => {
      let opacity = 1
      for (let e = b; e; e = e.parentElement) opacity *= Number(getComputedStyle(e).opacity)
      const backdrop = behind(b.parentElement)
      const style = getComputedStyle(b)
      const bg = over(rgba(style.backgroundColor), backdrop)
      const text = over(rgba(style.color), bg)
      return { name: b.textContent.trim(), ratio: contrast(over(text, backdrop, opacity), over(bg, backdrop, opacity)) }
    })
}

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
    for (const b of await page.evaluate(disabledButtonContrast)) {
      disabledChecked++
      if (b.ratio < DISABLED_MIN_CONTRAST) {
        failing.push(`${name} (${theme}): disabled button "${b.name}": text contrast ${b.ratio.toFixed(2)}:1, below ${DISABLED_MIN_CONTRAST}:1`)
      }
    }
    // Contrast axe could not decide (text over an image or a gradient, say): listed, not failed.
    for (const v of res.incomplete.filter((i) => i.id === 'color-contrast')) {
      const nodes = v.nodes.map((n) => `    ${n.target.join(' ')}: ${(n.any[0]?.message || '').trim()}`)
      notes.push(`${name} (${theme}): color-contrast needs review (axe could not decide)\n${nodes.join('\n')}`)
    }
  }
  await page.emulateMedia({ colorScheme: 'light' })
}

/** The audits' results: how many ran, how many disabled buttons were measured, the violations that fail, and the others. */
export function findings() {
  return { audits, disabledChecked, failing: [...failing], notes: [...notes] }
}
