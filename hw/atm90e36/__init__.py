"""atm90e36 package."""
