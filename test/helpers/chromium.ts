import { existsSync } from 'node:fs'
import { chromium, type Browser } from 'playwright-core'

/**
 * Debian's headless Chromium (the `chromium` package, never a downloaded browser)
 * driven by playwright-core, as the status-page browser test drives it. Where
 * /usr/bin/chromium is missing a browser test is skipped with `missing` as its
 * reason, unless AFFINITY_REQUIRE_BROWSER=1 (CI sets it), which makes that a failure.
 */
export const CHROMIUM = '/usr/bin/chromium'
/** No sandbox as root, and no background calls to Google's hosts. */
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']

export const missing = existsSync(CHROMIUM) ? undefined : `headless Chromium not found at ${CHROMIUM} (apt-get install -y --no-install-recommends chromium)`
export const required = process.env.AFFINITY_REQUIRE_BROWSER === '1'

let browser: Promise<Browser> | undefined
/** One browser per test file (playwright-core gives each context its own empty profile); close it with `closeChromium`. */
export function launchChromium (): Promise<Browser> {
  browser ??= chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS })
  return browser
}

export async function closeChromium (): Promise<void> {
  if (browser !== undefined) await (await browser).close()
}
