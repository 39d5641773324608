#!/usr/bin/env python3
"""Derive CAREC-corridor samples from public documents, by plain text substitution.

The public e-Phyto (Mattilsynet's SPS certificate, MIT) is an Argentine certificate for
Ecuador, and the Peppol BIS invoice (OpenPeppol) is between a British and a Swedish company:
signed by a CAREC participant, both rightly fail or warn in Caravan's content checks. The
derived files keep every element of the originals (notes, treatments, packages, the embedded
attachment) and change only who issued them, the parties, the countries, the number and the
dates, so that a document sent on a corridor is consistent with its sender and recipient.

Run from the repository root: `python3 tools/derive_samples.py`. The outputs are committed;
samples/SOURCES.md lists them with their sizes and hashes.
"""

import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent / "samples"

# Plant-protection organisations and invented traders (see samples/SOURCES.md).
PHYTO = {
    ("KZ", "CN"): dict(
        number="KZ-PHY-2026-004512",
        issued="2026-11-27T10:15:00+05:00",
        authority="Committee of State Inspection in the Agro-Industrial Complex, Ministry of Agriculture of the Republic of Kazakhstan",
        country_name="Kazakhstan",
        place="Almaty",
        consignor=("Zhetysu Agro LLP", "Abay Street 12", "Taldykorgan, Zhetysu Region, Kazakhstan"),
        consignee=("Xinjiang Tianshan Fruit Trading Co., Ltd.", "Youhao North Road 88", "Urumqi, Xinjiang, China"),
        port="Alashankou",
    ),
    ("UZ", "KZ"): dict(
        number="UZ-PHY-2026-017730",
        issued="2026-11-28T09:30:00+05:00",
        authority="Agency of Plant Quarantine and Protection of the Republic of Uzbekistan",
        country_name="Uzbekistan",
        place="Tashkent",
        consignor=("Fergana Meva Export LLC", "Mustaqillik Street 5", "Fergana, Uzbekistan"),
        consignee=("Almaty Fresh Distribution LLP", "Raiymbek Avenue 221", "Almaty, Kazakhstan"),
        port="Zhibek Zholy",
    ),
    ("KZ", "TJ"): dict(
        number="KZ-PHY-2026-004630",
        issued="2026-11-30T14:05:00+05:00",
        authority="Committee of State Inspection in the Agro-Industrial Complex, Ministry of Agriculture of the Republic of Kazakhstan",
        country_name="Kazakhstan",
        place="Shymkent",
        consignor=("Ontustik Grain LLP", "Tauke Khan Avenue 40", "Shymkent, Kazakhstan"),
        consignee=("Dushanbe Agro Import LLC", "Rudaki Avenue 101", "Dushanbe, Tajikistan"),
        port="Dushanbe",
    ),
}


def sub(text: str, old: str, new: str, count: int = 1) -> str:
    found = text.count(old)
    assert found >= count, f"{old!r} found {found} times, expected at least {count}"
    return text.replace(old, new)


def phyto(src: str, sender: str, recipient: str, d: dict) -> str:
    t = sub(src, "<ns1:ID>123ABC</ns1:ID>", f"<ns1:ID>{d['number']}</ns1:ID>")
    t = sub(t, "2016-04-22T13:53:08-03:00", d["issued"])
    t = sub(t, "Servicio Nacional de Sanidad y Calida Agroalimentaria", d["authority"])
    t = sub(t, "absent in Argentina", f"absent in {d['country_name']}", 4)
    t = sub(t, "La Plata, Buenos Aires", d["place"])
    name, line1, line2 = d["consignor"]
    t = sub(t, "<ns1:Name>Juan Perez</ns1:Name>", f"<ns1:Name>{name}</ns1:Name>")
    t = sub(t, "El trébol 853", line1)
    t = sub(t, "Brandsen, Buenos Aires, Argentina", line2)
    name, line1, line2 = d["consignee"]
    t = sub(t, "<ns1:Name>Importer SA</ns1:Name>", f"<ns1:Name>{name}</ns1:Name>")
    t = sub(t, "<ns1:LineOne>La Ronda</ns1:LineOne>", f"<ns1:LineOne>{line1}</ns1:LineOne>")
    t = sub(t, "Quito, Ecuador", line2)
    t = sub(
        t,
        "<ns1:ExportSPSCountry>\n            <ns1:ID>AR</ns1:ID>",
        f"<ns1:ExportSPSCountry>\n            <ns1:ID>{sender}</ns1:ID>",
    )
    t = sub(
        t,
        "<ns1:ImportSPSCountry>\n            <ns1:ID>EC</ns1:ID>",
        f"<ns1:ImportSPSCountry>\n            <ns1:ID>{recipient}</ns1:ID>",
    )
    # Goods grown in the exporting country; no transit through a third one.
    t = sub(t, "<ns1:OriginSPSCountry>\n                    <ns1:ID>AR</ns1:ID>",
            f"<ns1:OriginSPSCountry>\n                    <ns1:ID>{sender}</ns1:ID>", 2)
    t = sub(t, "<ns1:OriginSPSCountry>\n                    <ns1:ID>US</ns1:ID>",
            f"<ns1:OriginSPSCountry>\n                    <ns1:ID>{sender}</ns1:ID>")
    t = sub(t, "Valles de la RegiónPatagónica", d["place"], 2)
    t = sub(t, "<ns1:TransitSPSCountry>\n            <ns1:ID>US</ns1:ID>",
            f"<ns1:TransitSPSCountry>\n            <ns1:ID>{sender}</ns1:ID>")
    t = sub(t, '<ns1:ID schemeID="ISO_3166-1_alpha-2">USSEA</ns1:ID>', "<ns1:ID/>")
    t = sub(t, "Guayaquil (Seattle)", d["port"])
    return t


INVOICE = {
    ("CN", "UZ"): dict(
        number="CN-INV-2026-118204",
        issued="2026-11-26",
        due="2026-12-26",
        seller=("Xi'an Silk Road Machinery Co., Ltd.", "Keji Road 48", "Xi'an", "710075", "CN",
                "CN91610131MA6TXXXX1Q", "Xi'an Silk Road Machinery Co., Ltd."),
        buyer=("Samarkand Textile JSC", "Amir Temur Street 77", "Samarkand", "140100", "UZ",
               "UZ302456789", "Samarkand Textile JSC"),
    ),
}


def invoice(src: str, d: dict) -> str:
    t = sub(src, "<cbc:ID>Snippet1</cbc:ID>", f"<cbc:ID>{d['number']}</cbc:ID>")
    t = sub(t, "<cbc:IssueDate>2017-11-13</cbc:IssueDate>", f"<cbc:IssueDate>{d['issued']}</cbc:IssueDate>")
    t = sub(t, "<cbc:DueDate>2017-12-01</cbc:DueDate>", f"<cbc:DueDate>{d['due']}</cbc:DueDate>")
    for old, new in zip(
        ["SupplierTradingName Ltd.", "Main street 1", "London", "GB 123 EW", "GB",
         "GB1232434", "SupplierOfficialName Ltd"],
        d["seller"],
    ):
        t = sub(t, f">{old}<", f">{new}<")
    for old, new in zip(
        ["BuyerTradingName AS", "Hovedgatan 32", "Stockholm", "456 34", "SE",
         "SE4598375937", "Buyer Official Name"],
        d["buyer"],
    ):
        t = sub(t, f">{old}<", f">{new}<")
    return t


def main() -> None:
    src = (ROOT / "ephyto/mattilsynet-SPSCertificateContent.xml").read_text(encoding="utf-8")
    for (s, r), d in PHYTO.items():
        out = ROOT / f"ephyto/carec-{s}-{r}-phytosanitary.xml"
        out.write_text(phyto(src, s, r, d), encoding="utf-8")
        print(out.relative_to(ROOT.parent))
    src = (ROOT / "einvoice/ubl/peppol-base-example.xml").read_text(encoding="utf-8")
    for (s, r), d in INVOICE.items():
        out = ROOT / f"einvoice/ubl/carec-{s}-{r}-invoice.xml"
        out.write_text(invoice(src, d), encoding="utf-8")
        print(out.relative_to(ROOT.parent))


if __name__ == "__main__":
    main()
