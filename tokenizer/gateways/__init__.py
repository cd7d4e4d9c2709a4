"""Payment gateway adapters behind one small interface (:class:`tokenizer.gateways.base.Gateway`)."""
