"""Labelled articles for agency detection: credits and mentions that are not credits, in ten languages.

Each fixture is (language, text, author metadata, credited agency or None, credit kind or None).
The texts are short but keep where credits and mentions live on real pages: the dateline in
the first line, the byline in the author metadata or a "By" line, sign-offs and contributor
lines at the end, mentions and photo credits anywhere.
"""

from __future__ import annotations

from typing import NamedTuple


class Fixture(NamedTuple):
    language: str
    text: str
    author: str | None
    agency: str | None
    kind: str | None = None


def _full(language: str, text: str, agency: str, author: str | None = None) -> Fixture:
    return Fixture(language, text, author, agency, "full")


def _contrib(language: str, text: str, agency: str, author: str | None = None) -> Fixture:
    return Fixture(language, text, author, agency, "contributor")


def _none(language: str, text: str, author: str | None = None) -> Fixture:
    return Fixture(language, text, author, None)


BODY_EN = "Officials said the measure would take effect next month.\n\nCritics called the plan rushed."
BODY_DE = "Die Regelung soll im kommenden Monat in Kraft treten.\n\nKritiker nannten den Plan übereilt."
BODY_FR = "La mesure doit entrer en vigueur le mois prochain.\n\nLes critiques jugent le projet précipité."
BODY_ES = "La medida entrará en vigor el próximo mes.\n\nLos críticos calificaron el plan de precipitado."
BODY_IT = "La misura entrerà in vigore il mese prossimo.\n\nI critici hanno definito il piano affrettato."
BODY_PT = "A medida entra em vigor no próximo mês.\n\nOs críticos consideraram o plano precipitado."
BODY_RU = "Мера вступит в силу в следующем месяце.\n\nКритики назвали план поспешным."
BODY_AR = "ومن المقرر أن يدخل الإجراء حيز التنفيذ الشهر المقبل.\n\nووصف المنتقدون الخطة بأنها متسرعة."
BODY_ZH = "该措施将于下月生效。\n\n批评人士称该计划过于仓促。"
BODY_JA = "措置は来月施行される。\n\n批判派は計画が拙速だと指摘した。"

ENGLISH = [
    _full("en", f"WASHINGTON (AP) — The Senate voted on Tuesday to extend the program.\n\n{BODY_EN}", "AP"),
    _full("en", f"KYIV, Sept 30 (Reuters) - Ukraine said on Monday it had restored power.\n\n{BODY_EN}", "Reuters"),
    _full("en", f"The city council approved the budget on Monday.\n\n{BODY_EN}", "AP", author="By The Associated Press"),
    _full("en", f"The central bank held rates steady.\n\n{BODY_EN}", "Reuters", author="Jovan Kesler, Reuters"),
    _full("en", f"NEW DELHI, Dec 5 (PTI): The government on Thursday announced a new scheme.\n\n{BODY_EN}", "PTI"),
    _full("en", f"SYDNEY (AAP) - A heatwave is expected to hit the east coast.\n\n{BODY_EN}", "AAP"),
    _full("en", f"BEIJING, Dec. 5 (Xinhua) -- China's exports rose in November.\n\n{BODY_EN}", "Xinhua"),
    _full("en", f"SEOUL, Dec. 5 (Yonhap) -- North Korea fired a missile on Thursday.\n\n{BODY_EN}", "Yonhap"),
    _full("en", f"The province will raise the minimum wage.\n\n{BODY_EN}", "Canadian Press", author="The Canadian Press"),
    _full("en", f"The vote is set for Thursday.\n\n{BODY_EN}\n\n— Reuters", "Reuters"),
    _full("en", f"Rescuers pulled survivors from the rubble.\n\n{BODY_EN}\n\n(AFP)", "AFP"),
    _full("en", f"Oil prices fell for a third day.\n\n{BODY_EN}\n\n(Reporting by Anna Lee; Editing by Mark Potter)", "Reuters"),
    _full("en", f"By The Associated Press\n\nThe storm made landfall overnight.\n\n{BODY_EN}", "AP"),
    _full("en", f"MOSCOW, December 5. /TASS/. Russia's foreign minister met his Turkish counterpart.\n\n{BODY_EN}", "TASS"),
    _full("en", f"ANKARA (AA) - Turkey's parliament approved the budget.\n\n{BODY_EN}", "Anadolu"),
    _full("en", f"The storm cut power to 40,000 homes.\n\n{BODY_EN}", "agencies", author="Staff and agencies"),
    _contrib("en", f"The mayor resigned on Friday.\n\n{BODY_EN}\n\nThe Associated Press contributed to this report.", "AP"),
    _contrib("en", f"The team won its third title.\n\n{BODY_EN}\n\nAssociated Press writer Gwen Torres contributed to this report.", "AP"),
    _contrib("en", f"Floods displaced thousands.\n\n{BODY_EN}\n\n(With inputs from agencies)", "agencies"),
    _contrib("en", f"The strike entered its second week.\n\n{BODY_EN}\n\nWith wires", "agencies"),
    _contrib("en", f"The premier called an early election.\n\n{BODY_EN}\n\n— With files from The Canadian Press", "Canadian Press"),
    _contrib("en", f"The court blocked the law.\n\n{BODY_EN}\n\nInformation from Reuters was used in this report.", "Reuters"),
    _none("en", f"The minister said the figures were accurate, according to Reuters.\n\n{BODY_EN}"),
    _none("en", f"The senator told Agence France-Presse that the bill would pass.\n\n{BODY_EN}"),
    _none("en", f"Inflation will slow next year, a Reuters poll of economists showed.\n\n{BODY_EN}"),
    _none("en", f"The company said in an email to The Associated Press that it would appeal.\n\n{BODY_EN}"),
    _none("en", f"Smoke rises over the port on Tuesday. (AP Photo/Lena Brook)\n\nThe fire burned for hours.\n\n{BODY_EN}"),
    _none("en", f"Crowds gathered in the square.\n\n{BODY_EN}\n\nPhoto: AP"),
    _none("en", f"The council met on Monday.\n\n{BODY_EN}\n\nThe mayor told AFP she would not resign."),
    _none("en", f"AP EAMCET results were announced by the board on Friday.\n\n{BODY_EN}", author="Ravi Kumar"),
    _none("en", f"The airline cut 300 jobs, Reuters reported on Tuesday.\n\n{BODY_EN}"),
    _none("en", f"Protesters march in the capital. REUTERS/Ana Ferrol\n\n{BODY_EN}"),
    _none("en", f"Shares rose 4% after Bloomberg and Reuters reported the deal.\n\n{BODY_EN}", author="Jane Doe"),
    _none("en", f"A Reuters-Ipsos poll showed support for the plan at 41%.\n\n{BODY_EN}"),
    _none("en", f"Kyiv - Reuters poll shows most Ukrainians back talks.\n\n{BODY_EN}"),
    _none("en", f"AFP news agency — which first reported the deal — cited two sources.\n\n{BODY_EN}"),
    _none("en", f"The spokesman (AP) said nothing.\n\n{BODY_EN}", author="Metro Wire staff"),
    _full("en", f"The storm weakened overnight.\n\n{BODY_EN}\n\nCopyright 2026 The Associated Press. All rights reserved.", "AP"),
    _full("en", f"The index closed higher.\n\n{BODY_EN}\n\n(This story has not been edited by our staff and is auto-generated "
          "from a syndicated feed.)", "agencies"),
    _full("en", f"The strike ended on Friday.\n\n{BODY_EN}", "AP", author="By JOHN DOE, AP Business Writer"),
    _contrib("en", f"The storm moved east.\n\n{BODY_EN}\n\nContributing: Jane Doe, USA TODAY; The Associated Press", "AP"),
    _contrib("fr", f"Le Sénat a adopté le texte.\n\n{BODY_FR}", "AFP", author="Le Figaro avec AFP"),
    _none("en", f"The spokesman confirmed the report to dpa.\n\n{BODY_EN}\n\n© AFP"),
]

GERMAN = [
    _full("de", f"Berlin (dpa) - Die Bundesregierung hat am Mittwoch den Haushalt beschlossen.\n\n{BODY_DE}", "dpa"),
    _full("de", f"Frankfurt/Main (dpa/lhe) - Der Flughafen meldet Rekordzahlen.\n\n{BODY_DE}", "dpa"),
    _full("de", f"Wien (APA) - Die Inflation in Österreich ist gesunken.\n\n{BODY_DE}", "APA"),
    _full("de", f"Bern (sda) - Der Bundesrat hat die Vorlage verabschiedet.\n\n{BODY_DE}", "Keystone-SDA"),
    _full("de", f"Der Landtag tagt am Donnerstag.\n\n{BODY_DE}", "dpa", author="dpa"),
    _full("de", f"Die Börse schloss im Plus.\n\n{BODY_DE}\n\n© dpa-infocom, dpa:261205-99-123456/3", "dpa"),
    _full("de", f"Washington (AFP) - Der US-Senat hat das Gesetz gebilligt.\n\n{BODY_DE}", "AFP"),
    _full("de", f"Die Bahn streicht Verbindungen.\n\n{BODY_DE}\n\nQuelle: dpa", "dpa"),
    _full("de", f"Bonn (KNA) - Die Bischofskonferenz tagt in Fulda.\n\n{BODY_DE}", "KNA"),
    _full("de", f"Paris (Reuters) - Frankreichs Regierung übersteht das Misstrauensvotum.\n\n{BODY_DE}", "Reuters"),
    _contrib("de", f"Die Stadt plant ein neues Bad.\n\n{BODY_DE}\n\nmit Material von dpa", "dpa"),
    _contrib("de", f"Der Streik geht weiter.\n\n{BODY_DE}\n\nMit Material der Nachrichtenagenturen", "agencies"),
    _none("de", f"Laut dpa will die Regierung den Haushalt am Mittwoch beschließen.\n\n{BODY_DE}"),
    _none("de", f"Wie die Nachrichtenagentur Reuters berichtete, sinkt die Inflation.\n\n{BODY_DE}"),
    _none("de", f"Einsatzkräfte an der Bahn. Foto: Lena Brandl/dpa\n\n{BODY_DE}"),
    _none("de", f"Der Minister sagte der Deutschen Presse-Agentur, er trete nicht zurück.\n\n{BODY_DE}"),
    _none("de", f"Der Bürgermeister sprach im Rathaus.\n\n{BODY_DE}\n\nBild: AFP"),
    _none("de", f"Das Unternehmen bestätigte der dpa die Pläne.\n\n{BODY_DE}", author="Anna Berger"),
    _none("de", f"Nach Angaben von AFP wurden drei Menschen verletzt.\n\n{BODY_DE}"),
    _none("de", f"Die Polizei war vor Ort.\n\n{BODY_DE}\n\nDas berichtete die Agentur Reuters unter Berufung auf Insider."),
    _none("de", f"Eine Umfrage von Reuters unter Ökonomen erwartet Zinssenkungen.\n\n{BODY_DE}"),
    _none("de", f"Der Vorstand äußerte sich gegenüber AFP nicht.\n\n{BODY_DE}", author="Redaktion Stadtanzeiger"),
]

FRENCH = [
    _full("fr", f"PARIS (AFP) - Le gouvernement a présenté mardi son budget.\n\n{BODY_FR}", "AFP"),
    _full("fr", f"Bruxelles, 5 déc. (Belga) - Le gouvernement fédéral a approuvé la réforme.\n\n{BODY_FR}", "Belga"),
    _full("fr", f"Genève (ATS) - Le Conseil d'Etat a adopté le projet.\n\n{BODY_FR}", "Keystone-SDA"),
    _full("fr", f"Le Sénat a voté le texte.\n\n{BODY_FR}", "AFP", author="Par AFP"),
    _full("fr", f"Montréal (La Presse Canadienne) - Le gouvernement a annoncé une hausse.\n\n{BODY_FR}", "Canadian Press"),
    _full("fr", f"La grève continue dans les ports.\n\n{BODY_FR}\n\n(AFP)", "AFP"),
    _full("fr", f"LONDRES (Reuters) - La Banque d'Angleterre a maintenu ses taux.\n\n{BODY_FR}", "Reuters"),
    _full("fr", f"Le prix du pétrole recule.\n\n{BODY_FR}\n\n(Reportage Marc Dupont, édité par Sophie Martin)", "Reuters"),
    _full("fr", f"Par Agence France-Presse\n\nLe président a reçu son homologue.\n\n{BODY_FR}", "AFP"),
    _full("fr", f"Le salon ouvre ses portes.\n\n{BODY_FR}\n\nSource : AFP", "AFP"),
    _contrib("fr", f"Les négociations ont repris.\n\n{BODY_FR}\n\navec AFP", "AFP"),
    _contrib("fr", f"Le cessez-le-feu tient.\n\n{BODY_FR}\n\n(avec Reuters)", "Reuters"),
    _none("fr", f"Selon l'AFP, le ministre a démissionné.\n\n{BODY_FR}"),
    _none("fr", f"Le ministre a déclaré à l'AFP qu'il ne démissionnerait pas.\n\n{BODY_FR}"),
    _none("fr", f"Des manifestants à Paris, le 5 décembre. Photo AFP\n\n{BODY_FR}"),
    _none("fr", f"Le port est paralysé.\n\n{BODY_FR}\n\n© AFP"),
    _none("fr", f"D'après Reuters, l'accord serait proche.\n\n{BODY_FR}"),
    _none("fr", f"Un sondage Reuters publié lundi montre une baisse.\n\n{BODY_FR}", author="Claire Dubois"),
    _none("fr", f"La police est intervenue.\n\n{BODY_FR}\n\nL'information a été confirmée à l'AFP par la préfecture."),
    _none("fr", f"Le ministre s'est confié à l'agence Reuters mardi.\n\n{BODY_FR}"),
    _none("fr", f"Une porte-parole a indiqué à l'Agence France-Presse que l'enquête continue.\n\n{BODY_FR}"),
    _none("fr", f"La foule devant l'Assemblée (Crédit photo : AFP)\n\n{BODY_FR}"),
]

SPANISH = [
    _full("es", f"MADRID, 5 dic (EFE).- El Gobierno aprobó este martes los presupuestos.\n\n{BODY_ES}", "EFE"),
    _full("es", f"Buenos Aires, 5 dic (EFE) - La inflación bajó en noviembre.\n\n{BODY_ES}", "EFE"),
    _full("es", f"MÉXICO (AP) — El Senado aprobó la reforma.\n\n{BODY_ES}", "AP"),
    _full("es", f"Madrid (Europa Press) - El Congreso debatirá la ley el jueves.\n\n{BODY_ES}", "Europa Press"),
    _full("es", f"El Banco Central mantuvo las tasas.\n\n{BODY_ES}", "EFE", author="Agencia EFE"),
    _full("es", f"El precio del crudo cayó.\n\n{BODY_ES}\n\n(Reporte de Juan Pérez; Editado en español por Ana Gómez)", "Reuters"),
    _full("es", f"BOGOTÁ (Reuters) - El presidente anunció un nuevo gabinete.\n\n{BODY_ES}", "Reuters"),
    _full("es", f"La huelga continúa en los puertos.\n\n{BODY_ES}\n\nEFE", "EFE"),
    _full("es", f"Santiago (AFP) - Chile registró un sismo de magnitud 6.\n\n{BODY_ES}", "AFP"),
    _full("es", f"La selección ganó el partido.\n\n{BODY_ES}", "EFE", author="Redacción EFE"),
    _contrib("es", f"Las negociaciones siguen.\n\n{BODY_ES}\n\nCon información de EFE", "EFE"),
    _contrib("es", f"El alcalde dimitió.\n\n{BODY_ES}\n\n(Con información de agencias)", "agencies"),
    _none("es", f"Según EFE, el ministro presentó su dimisión.\n\n{BODY_ES}"),
    _none("es", f"El portavoz dijo a Reuters que la empresa apelará.\n\n{BODY_ES}"),
    _none("es", f"Manifestantes en Madrid. Foto: EFE/Juan Pérez\n\n{BODY_ES}"),
    _none("es", f"De acuerdo con AP, hubo tres heridos.\n\n{BODY_ES}"),
    _none("es", f"El acuerdo está cerca, informó la agencia AFP.\n\n{BODY_ES}", author="María López"),
    _none("es", f"Una encuesta de Reuters prevé recortes de tasas.\n\n{BODY_ES}"),
    _none("es", f"La policía acudió al lugar.\n\n{BODY_ES}\n\nEl ministro declaró a EFE que no dimitirá."),
    _none("es", f"Bomberos trabajan en la zona. (AP Foto/Fernando Llano)\n\n{BODY_ES}"),
    _none("es", f"La empresa confirmó a la agencia Europa Press los despidos.\n\n{BODY_ES}"),
    _none("es", f"La ciudad amaneció bajo la nieve.\n\n{BODY_ES}\n\nImagen: AFP"),
]

ITALIAN = [
    _full("it", f"ROMA, 5 DIC (ANSA) - Il governo ha approvato la manovra.\n\n{BODY_IT}", "ANSA"),
    _full("it", f"(ANSA) - MILANO, 05 DIC - La Borsa di Milano chiude in rialzo.\n\n{BODY_IT}", "ANSA"),
    _full("it", f"Roma, 5 dic. (Adnkronos) - Il Senato ha votato la fiducia.\n\n{BODY_IT}", "Adnkronos"),
    _full("it", f"Roma, 5 dic. (AGI) - Il premier ha incontrato i sindacati.\n\n{BODY_IT}", "AGI"),
    _full("it", f"Parigi (AFP) - Il governo francese supera la sfiducia.\n\n{BODY_IT}", "AFP"),
    _full("it", f"Lo sciopero continua nei porti.\n\n{BODY_IT}", "ANSA", author="Redazione ANSA"),
    _full("it", f"Il prezzo del petrolio scende.\n\n{BODY_IT}\n\n(ANSA)", "ANSA"),
    _full("it", f"MILANO (Reuters) - Le banche italiane chiudono in calo.\n\n{BODY_IT}", "Reuters"),
    _full("it", f"Il vertice si è chiuso senza accordo.\n\n{BODY_IT}\n\nFonte: ANSA", "ANSA"),
    _full("it", f"Di Agenzia ANSA\n\nIl sindaco ha presentato il piano.\n\n{BODY_IT}", "ANSA"),
    _contrib("it", f"Le trattative proseguono.\n\n{BODY_IT}\n\ncon agenzie", "agencies"),
    _contrib("it", f"Il cessate il fuoco regge.\n\n{BODY_IT}\n\n(con informazioni di Reuters)", "Reuters"),
    _none("it", f"Secondo l'ANSA, il ministro si è dimesso.\n\n{BODY_IT}"),
    _none("it", f"Il portavoce ha detto all'AFP che l'azienda farà ricorso.\n\n{BODY_IT}"),
    _none("it", f"Manifestanti a Roma. Foto ANSA/Angelo Carconi\n\n{BODY_IT}"),
    _none("it", f"Lo riferisce l'agenzia Reuters citando fonti vicine al dossier.\n\n{BODY_IT}"),
    _none("it", f"Un sondaggio Reuters prevede un taglio dei tassi.\n\n{BODY_IT}", author="Marco Rossi"),
    _none("it", f"La polizia è intervenuta.\n\n{BODY_IT}\n\nLo ha detto il ministro all'ANSA."),
    _none("it", f"Come riportato da AGI, i feriti sono tre.\n\n{BODY_IT}"),
    _none("it", f"Il Duomo illuminato. (Foto AFP)\n\n{BODY_IT}"),
    _none("it", f"In un'intervista ad Adnkronos il sindaco ha annunciato le dimissioni.\n\n{BODY_IT}"),
    _none("it", f"La città sotto la neve.\n\n{BODY_IT}\n\n© ANSA"),
]

PORTUGUESE = [
    _full("pt", f"LISBOA, 5 dez (Lusa) - O Governo aprovou o Orçamento do Estado.\n\n{BODY_PT}", "Lusa"),
    _full("pt", f"SÃO PAULO (Reuters) - O Ibovespa fechou em alta nesta quinta-feira.\n\n{BODY_PT}", "Reuters"),
    _full("pt", f"Brasília (AFP) - O Senado aprovou a reforma tributária.\n\n{BODY_PT}", "AFP"),
    _full("pt", f"O Banco Central manteve os juros.\n\n{BODY_PT}", "Agência Brasil", author="Agência Brasil"),
    _full("pt", f"Porto, 5 dez (Lusa) - A greve dos estivadores continua.\n\n{BODY_PT}", "Lusa"),
    _full("pt", f"O preço do petróleo caiu.\n\n{BODY_PT}\n\n(Reportagem de João Silva; Edição de Maria Souza)", "Reuters"),
    _full("pt", f"A seleção venceu o jogo.\n\n{BODY_PT}", "Lusa", author="Lusa"),
    _full("pt", f"O incêndio foi controlado.\n\n{BODY_PT}\n\nFonte: Agência Lusa", "Lusa"),
    _full("pt", f"Luanda (AFP) - O presidente angolano anunciou eleições.\n\n{BODY_PT}", "AFP"),
    _full("pt", f"O parlamento aprovou a lei.\n\n{BODY_PT}\n\n(Lusa)", "Lusa"),
    _contrib("pt", f"As negociações continuam.\n\n{BODY_PT}\n\nCom informações da Reuters", "Reuters"),
    _contrib("pt", f"O cessar-fogo se mantém.\n\n{BODY_PT}\n\n(Com agências)", "agencies"),
    _none("pt", f"Segundo a Lusa, o ministro apresentou a demissão.\n\n{BODY_PT}"),
    _none("pt", f"O porta-voz disse à Reuters que a empresa vai recorrer.\n\n{BODY_PT}"),
    _none("pt", f"Manifestantes em Lisboa. Foto: Lusa\n\n{BODY_PT}"),
    _none("pt", f"De acordo com a AFP, três pessoas ficaram feridas.\n\n{BODY_PT}"),
    _none("pt", f"Uma pesquisa da Reuters prevê corte de juros.\n\n{BODY_PT}", author="Pedro Santos"),
    _none("pt", f"A polícia esteve no local.\n\n{BODY_PT}\n\nO ministro afirmou à agência Lusa que não se demite."),
    _none("pt", f"Bombeiros combatem o fogo. (AP Photo/Andre Penner)\n\n{BODY_PT}"),
    _none("pt", f"A informação foi confirmada à Agência Brasil pelo ministério.\n\n{BODY_PT}"),
    _none("pt", f"Conforme noticiou a AP, o acordo está próximo.\n\n{BODY_PT}"),
    _none("pt", f"A cidade amanheceu com neve.\n\n{BODY_PT}\n\n© Reuters"),
]

RUSSIAN = [
    _full("ru", f"МОСКВА, 5 дек - РИА Новости. Президент провел совещание с правительством.\n\n{BODY_RU}", "RIA Novosti"),
    _full("ru", f"МОСКВА, 5 декабря. /ТАСС/. Госдума приняла бюджет в третьем чтении.\n\n{BODY_RU}", "TASS"),
    _full("ru", f"Москва. 5 декабря. INTERFAX.RU - Центробанк сохранил ключевую ставку.\n\n{BODY_RU}", "Interfax"),
    _full("ru", f"ВАШИНГТОН, 5 дек - РИА Новости. Сенат США одобрил законопроект.\n\n{BODY_RU}", "RIA Novosti"),
    _full("ru", f"КИЕВ, 5 декабря /ТАСС/. Верховная рада приняла закон.\n\n{BODY_RU}", "TASS"),
    _full("ru", f"Цены на нефть снизились.\n\n{BODY_RU}", "TASS", author="ТАСС"),
    _full("ru", f"Правительство утвердило программу.\n\n{BODY_RU}\n\nИсточник: РИА Новости", "RIA Novosti"),
    _full("ru", f"ЛОНДОН (Рейтер) - Банк Англии сохранил ставку.\n\n{BODY_RU}", "Reuters"),
    _full("ru", f"Киев (Укринформ) - Кабинет министров принял решение.\n\n{BODY_RU}", "Ukrinform"),
    _full("ru", f"Сборная выиграла матч.\n\n{BODY_RU}\n\n(ТАСС)", "TASS"),
    _contrib("ru", f"Переговоры продолжаются.\n\n{BODY_RU}\n\nПо материалам ТАСС", "TASS"),
    _contrib("ru", f"Перемирие соблюдается.\n\n{BODY_RU}\n\nПо материалам РИА Новости", "RIA Novosti"),
    _none("ru", f"По данным ТАСС, министр подал в отставку.\n\n{BODY_RU}"),
    _none("ru", f"Об этом сообщает РИА Новости со ссылкой на источник.\n\n{BODY_RU}"),
    _none("ru", f"Митинг в центре Москвы. Фото: ТАСС/Иван Петров\n\n{BODY_RU}"),
    _none("ru", f"Как передает Интерфакс, пострадали три человека.\n\n{BODY_RU}"),
    _none("ru", f"Представитель компании сообщил ТАСС, что решение будет обжаловано.\n\n{BODY_RU}", author="Иван Смирнов"),
    _none("ru", f"Полиция прибыла на место.\n\n{BODY_RU}\n\nОб этом министр заявил РИА Новости."),
    _none("ru", f"Опрос Reuters показал снижение инфляции.\n\n{BODY_RU}"),
    _none("ru", f"Согласно источникам агентства Рейтер, сделка близка.\n\n{BODY_RU}"),
    _none("ru", f"Снег в Москве.\n\n{BODY_RU}\n\nФото: РИА Новости"),
    _none("ru", f"Министр в интервью ТАСС рассказал о планах.\n\n{BODY_RU}"),
]

ARABIC = [
    _full("ar", f"القاهرة (رويترز) - قال البنك المركزي إنه أبقى أسعار الفائدة دون تغيير.\n\n{BODY_AR}", "Reuters"),
    _full("ar", f"باريس (أ ف ب) - أعلنت الحكومة الفرنسية موازنة جديدة.\n\n{BODY_AR}", "AFP"),
    _full("ar", f"برلين (د ب أ) - أقر البرلمان الألماني القانون.\n\n{BODY_AR}", "dpa"),
    _full("ar", f"أنقرة (الأناضول) - صادق البرلمان التركي على الموازنة.\n\n{BODY_AR}", "Anadolu"),
    _full("ar", f"الرياض (واس) - أعلنت وزارة المالية الميزانية.\n\n{BODY_AR}", "SPA"),
    _full("ar", f"الدوحة (قنا) - استقبل الأمير وزير الخارجية.\n\n{BODY_AR}", "QNA"),
    _full("ar", f"ارتفعت أسعار النفط.\n\n{BODY_AR}\n\n(رويترز)", "Reuters"),
    _full("ar", f"واشنطن (أ ب) - صوت مجلس الشيوخ على القانون.\n\n{BODY_AR}", "AP"),
    _full("ar", f"أعلنت الحكومة خطة جديدة.\n\n{BODY_AR}\n\nالمصدر: الأناضول", "Anadolu"),
    _full("ar", f"أبوظبي (وام) - أطلقت الحكومة مبادرة جديدة.\n\n{BODY_AR}", "WAM"),
    _full("ar", f"تستمر المفاوضات.\n\n{BODY_AR}\n\n(وكالات)", "agencies"),
    _none("ar", f"وقالت وكالة رويترز إن الوزير استقال.\n\n{BODY_AR}"),
    _none("ar", f"وبحسب وكالة الأناضول، أصيب ثلاثة أشخاص.\n\n{BODY_AR}"),
    _none("ar", f"متظاهرون في القاهرة. صورة: رويترز\n\n{BODY_AR}"),
    _none("ar", f"وأكد المتحدث لوكالة فرانس برس أن الشركة ستستأنف.\n\n{BODY_AR}"),
    _none("ar", f"ونقلت رويترز عن مصادر أن الاتفاق قريب.\n\n{BODY_AR}", author="أحمد علي"),
    _none("ar", f"وصلت الشرطة إلى المكان.\n\n{BODY_AR}\n\nوقال الوزير لوكالة الأنباء الألمانية إنه لن يستقيل."),
    _none("ar", f"وذكرت وكالة الأنباء السعودية أن الميزانية أقرت.\n\n{BODY_AR}"),
    _none("ar", f"أظهر استطلاع لرويترز تراجع التضخم.\n\n{BODY_AR}"),
    _none("ar", f"ثلوج في عمان.\n\n{BODY_AR}\n\n© أ ف ب"),
    _none("ar", f"وأفادت وكالة أسوشيتد برس بأن الحريق أخمد.\n\n{BODY_AR}"),
]

CHINESE = [
    _full("zh", f"新华社北京12月5日电（记者 王磊）国务院常务会议5日召开。\n\n{BODY_ZH}", "Xinhua"),
    _full("zh", f"中新社北京12月5日电 国家统计局5日发布数据。\n\n{BODY_ZH}", "China News Service"),
    _full("zh", f"中央社記者王小明台北5日電 行政院今天通過預算。\n\n{BODY_ZH}", "CNA"),
    _full("zh", f"路透北京12月5日 - 中国11月出口增长。\n\n{BODY_ZH}", "Reuters"),
    _full("zh", f"法新社巴黎5日电 法国政府5日公布预算。\n\n{BODY_ZH}", "AFP"),
    _full("zh", f"新华社华盛顿12月4日电 美国国会通过法案。\n\n{BODY_ZH}", "Xinhua"),
    _full("zh", f"油价连续第三天下跌。\n\n{BODY_ZH}\n\n来源：新华社", "Xinhua"),
    _full("zh", f"央行维持利率不变。\n\n{BODY_ZH}", "Xinhua", author="新华社"),
    _full("zh", f"美联社华盛顿12月5日电 参议院通过法案。\n\n{BODY_ZH}", "AP"),
    _full("zh", f"国际油价下跌。\n\n{BODY_ZH}\n\n（路透社）", "Reuters"),
    _contrib("zh", f"谈判仍在继续。\n\n{BODY_ZH}\n\n综合新华社", "Xinhua"),
    _none("zh", f"据新华社报道，国务院5日召开会议。\n\n{BODY_ZH}"),
    _none("zh", f"路透社援引知情人士消息称，交易即将完成。\n\n{BODY_ZH}"),
    _none("zh", f"新华社记者 李明 摄\n\n{BODY_ZH}"),
    _none("zh", f"发言人对法新社表示，公司将上诉。\n\n{BODY_ZH}", author="张伟"),
    _none("zh", f"据美联社消息，三人受伤。\n\n{BODY_ZH}"),
    _none("zh", f"警方已到达现场。\n\n{BODY_ZH}\n\n部长在接受新华社采访时表示不会辞职。"),
    _none("zh", f"路透调查显示，经济学家预计降息。\n\n{BODY_ZH}"),
    _none("zh", f"图为北京街头。（图片来源：新华社）\n\n{BODY_ZH}"),
    _full("zh", f"中新网12月5日电 据新华社报道，会议召开。\n\n{BODY_ZH}", "China News Service"),
    _none("zh", f"大雪覆盖北京。\n\n{BODY_ZH}\n\n新华社发（王磊摄）"),
    _none("zh", f"共同社报道称，日本政府将出台新政策。\n\n{BODY_ZH}"),
]

JAPANESE = [
    _full("ja", f"【ワシントン共同】米上院は4日、法案を可決した。\n\n{BODY_JA}", "Kyodo"),
    _full("ja", f"【ロンドン時事】英中央銀行は政策金利を据え置いた。\n\n{BODY_JA}", "Jiji"),
    _full("ja", f"［東京 5日 ロイター］ - 日経平均は反発した。\n\n{BODY_JA}", "Reuters"),
    _full("ja", f"【12月5日 AFP】フランス政府は予算案を発表した。\n\n{BODY_JA}", "AFP"),
    _full("ja", f"【北京共同】中国の輸出が増加した。\n\n{BODY_JA}", "Kyodo"),
    _full("ja", f"【AFP=時事】米国の雇用統計が発表された。\n\n{BODY_JA}", "AFP"),
    _full("ja", f"政府は新たな経済対策を決定した。\n\n{BODY_JA}\n\n（共同）", "Kyodo"),
    _full("ja", f"日銀は金利を据え置いた。\n\n{BODY_JA}", "Kyodo", author="共同通信"),
    _full("ja", f"株価が下落した。\n\n{BODY_JA}\n\n（時事）", "Jiji"),
    _full("ja", f"【ソウル聯合】韓国政府は対策を発表した。\n\n{BODY_JA}", "Yonhap"),
    _contrib("ja", f"交渉は続いている。\n\n{BODY_JA}\n\n（ロイターを基に作成）", "Reuters"),
    _none("ja", f"共同通信の取材に対し、大臣は辞任を否定した。\n\n{BODY_JA}"),
    _none("ja", f"ロイター通信によると、合意は近いという。\n\n{BODY_JA}"),
    _none("ja", f"東京の街並み（ロイター＝共同）写真\n\n{BODY_JA}"),
    _none("ja", f"広報担当者はAFPに対し、控訴する方針を示した。\n\n{BODY_JA}", author="山田太郎"),
    _none("ja", f"時事通信の世論調査で内閣支持率が低下した。\n\n{BODY_JA}"),
    _none("ja", f"警察が現場に到着した。\n\n{BODY_JA}\n\n大臣は共同通信に辞任しないと語った。"),
    _none("ja", f"ロイターの調査では、エコノミストは利下げを予想している。\n\n{BODY_JA}"),
    _none("ja", f"雪の東京。\n\n{BODY_JA}\n\n写真：AFP時事"),
    _none("ja", f"新華社によると、会議が開かれた。\n\n{BODY_JA}"),
    _none("ja", f"【図解】日銀の金融政策\n\n{BODY_JA}"),
    _none("ja", f"AP通信が伝えたところによると、3人が負傷した。\n\n{BODY_JA}"),
]

FIXTURES: list[Fixture] = ENGLISH + GERMAN + FRENCH + SPANISH + ITALIAN + PORTUGUESE + RUSSIAN + ARABIC + CHINESE + JAPANESE
