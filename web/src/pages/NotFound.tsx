import { Link } from 'react-router'
import { EmptyState } from '../components/ui'

export function NotFound() {
  return (
    <EmptyState title="No such page">
      <Link to="/" className="text-accent underline">
        Go to Analytics
      </Link>
    </EmptyState>
  )
}
