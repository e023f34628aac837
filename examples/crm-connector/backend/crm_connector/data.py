"""A small demo CRM, so the example works without an external system."""

CONTACTS = [
    {"id": 1, "name": "Ada Lovelace", "email": "ada@analytical.example", "company": "Analytical"},
    {"id": 2, "name": "Grace Hopper", "email": "grace@cobol.example", "company": "Cobol Corp"},
    {"id": 3, "name": "Alan Turing", "email": "alan@bletchley.example", "company": "Bletchley"},
]

DEALS = [
    {"id": 10, "title": "Analytical engine upgrade", "amount": 120000, "contact_id": 1},
    {"id": 11, "title": "Compiler licences", "amount": 45000, "contact_id": 2},
    {"id": 12, "title": "Codebreaking consultancy", "amount": 98000, "contact_id": 3},
]
