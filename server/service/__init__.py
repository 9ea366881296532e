"""The service layer: collections (store + payload index + live index + writer + trainer),
knowing nothing of HTTP. `registry.Service` holds them by name; `collection.Collection` is
the per-collection API. (Kept free of imports so light modules load without numpy.)"""
