// Sends an identify and two captures to evp with PostHog's own Node.js library
// (posthog-node), as an existing app would after changing its host: evp's URL in EVP_URL,
// an evp API key as the project key in EVP_KEY. Exits 0 once every event was delivered, 1
// with the library's errors otherwise. Run by internal/app's SDK test.
import { PostHog } from 'posthog-node'

const posthog = new PostHog(process.env.EVP_KEY, {
  host: process.env.EVP_URL,
  flushAt: 3,
  flushInterval: 200,
  fetchRetryCount: 5,
  fetchRetryDelay: 100,
})
const failures = []
posthog.on('error', (err) => failures.push(String(err?.message ?? err)))

posthog.identify({ distinctId: 'ph-user', properties: { plan: 'pro' } })
posthog.capture({ distinctId: 'ph-user', event: 'signed up', properties: { source: 'ad', $session_id: 'ph-session' } })
posthog.capture({ distinctId: 'ph-user', event: '$pageview', properties: { $current_url: 'https://example.com/' } })

await posthog.shutdown(20000)
if (failures.length > 0) {
  console.error(failures.join('\n'))
  process.exit(1)
}
console.log('delivered')
