/** Logo is evp's mark: a rising line on the accent colour, drawn inline (no asset to load). */
export function Logo({ className = 'h-7 w-7' }: { className?: string }) {
  return (
    <svg viewBox="0 0 32 32" className={className} aria-hidden="true">
      <rect width="32" height="32" rx="7" className="fill-accent" />
      <path d="M7 21l6-7 5 4 7-9" fill="none" stroke="currentColor" strokeWidth="3" strokeLinecap="round" strokeLinejoin="round" className="text-accent-ink" />
    </svg>
  )
}
