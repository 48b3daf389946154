// Sends identify, track and page calls to evp with Segment's own Node.js library
// (@segment/analytics-node), as an existing app would after changing its host: evp's URL in
// EVP_URL, an evp API key as the write key in EVP_KEY. Exits 0 once every call was
// delivered, 1 with the library's errors otherwise. Run by internal/app's SDK test.
import { Analytics } from '@segment/analytics-node'

const analytics = new Analytics({
  writeKey: process.env.EVP_KEY,
  host: process.env.EVP_URL,
  flushAt: 3,
  flushInterval: 200,
  maxRetries: 5,
})
const failures = []
analytics.on('error', (err) => failures.push(String(err?.reason ?? err)))

analytics.identify({ userId: 'sdk-user', traits: { plan: 'pro', email: 'sdk@example.com' } })
analytics.track({ userId: 'sdk-user', event: 'Order Completed', properties: { revenue: 42.5, currency: 'EUR' } })
analytics.page({ anonymousId: 'anon-1', name: 'Home', properties: { path: '/' } })

await analytics.closeAndFlush({ timeout: 20000 })
if (failures.length > 0) {
  console.error(failures.join('\n'))
  process.exit(1)
}
console.log('delivered')
