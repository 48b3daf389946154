import { useState } from 'react'
import { Button } from './ui'

/** CopyButton copies text to the clipboard and says so; where the clipboard is not available
 *  (plain http on another host) it selects the text of the element named by targetId. */
export function CopyButton({ text, targetId, label = 'Copy' }: { text: string; targetId?: string; label?: string }) {
  const [state, setState] = useState<'idle' | 'copied' | 'select'>('idle')
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text)
      setState('copied')
    } catch {
      const el = targetId ? document.getElementById(targetId) : null
      if (el) {
        const r = document.createRange()
        r.selectNodeContents(el)
        const sel = window.getSelection()
        sel?.removeAllRanges()
        sel?.addRange(r)
      }
      setState('select')
    }
    setTimeout(() => setState('idle'), 2500)
  }
  return (
    <Button onClick={copy} aria-live="polite">
      {state === 'copied' ? 'Copied' : state === 'select' ? 'Selected: press Ctrl+C' : label}
    </Button>
  )
}
